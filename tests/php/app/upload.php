<?php
// A multipart file upload: what arrived, and its digest.
header('Content-Type: application/json');
$f = $_FILES['file'] ?? null;
echo json_encode($f === null ? ['error' => 'no file'] : [
    'name' => $f['name'],
    'size' => $f['size'],
    'md5' => md5_file($f['tmp_name']),
    'note' => $_POST['note'] ?? null,
]);
