<?php
header('Content-Type: text/html; charset=utf-8');
$when = date('H:i:s');
echo "<!doctype html><title>Kavro + PHP</title><link rel=stylesheet href=/site.css>\n";
echo "<h1>Rendered by PHP at $when</h1><p><a href=/blog/hello>A post</a></p>\n";
