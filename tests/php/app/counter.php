<?php
// Counts how often PHP ran (the origin's hits) in `.hits` beside it.
// `cc` sets Cache-Control, `vary` sets Vary, `cookie` sets a cookie, `ms` waits.
$file = __DIR__ . '/.hits';
$fp = fopen($file, 'c+');
flock($fp, LOCK_EX);
$n = (int)stream_get_contents($fp) + 1;
ftruncate($fp, 0);
rewind($fp);
fwrite($fp, (string)$n);
flock($fp, LOCK_UN);
fclose($fp);
if (isset($_GET['ms'])) {
    usleep((int)$_GET['ms'] * 1000);
}
if (isset($_GET['cc'])) {
    header('Cache-Control: ' . $_GET['cc']);
}
if (isset($_GET['vary'])) {
    header('Vary: ' . $_GET['vary']);
}
if (isset($_GET['cookie'])) {
    setcookie('session', 'abc');
}
header('Content-Type: text/plain');
echo "run $n lang=" . ($_SERVER['HTTP_ACCEPT_LANGUAGE'] ?? '-') . "\n";
