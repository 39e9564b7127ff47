<?php
// A form POST.
header('Content-Type: application/json');
echo json_encode(['method' => $_SERVER['REQUEST_METHOD'], 'post' => $_POST]);
