<?php
echo "sub index, path info: " . ($_SERVER['PATH_INFO'] ?? '') . "\n";
