<?php
// The CGI params the host sent.
header('Content-Type: application/json');
$keys = ['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_METHOD',
    'REQUEST_URI', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'SERVER_NAME', 'SERVER_PORT',
    'SERVER_ADDR', 'SERVER_PROTOCOL', 'SERVER_SOFTWARE', 'REMOTE_ADDR', 'REMOTE_PORT',
    'GATEWAY_INTERFACE', 'DOCUMENT_ROOT', 'HTTPS', 'REQUEST_SCHEME', 'HTTP_X_CUSTOM', 'HTTP_PROXY',
    'HTTP_HOST', 'PATH_TRANSLATED'];
$out = [];
foreach ($keys as $k) {
    $out[$k] = $_SERVER[$k] ?? null;
}
$out['body'] = file_get_contents('php://input');
echo json_encode($out);
