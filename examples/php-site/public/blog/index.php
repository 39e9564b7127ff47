<?php
// Front controller: the post's slug is the rest of the path.
$slug = basename(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
if (!preg_match('/^[a-z0-9-]+$/', $slug) || $slug === 'blog') {
    http_response_code(404);
    echo "no such post\n";
    return;
}
header('Content-Type: text/html; charset=utf-8');
echo "<!doctype html><title>$slug</title><h1>Post: " . htmlspecialchars($slug) . "</h1>\n";
