<?php
// Sets two cookies and reports the ones it received.
setcookie('first', 'one');
setcookie('second', 'two');
header('Content-Type: application/json');
echo json_encode(['cookies' => $_COOKIE]);
