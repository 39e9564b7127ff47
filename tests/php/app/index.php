<?php
// GET with a query: echoes the query back.
header('Content-Type: application/json');
echo json_encode(['page' => 'index', 'get' => $_GET]);
