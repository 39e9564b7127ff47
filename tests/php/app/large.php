<?php
// A large output: `n` bytes (default 3 MB) of a repeating pattern.
$n = (int)($_GET['n'] ?? 3000000);
echo str_repeat('0123456789', intdiv($n, 10));
