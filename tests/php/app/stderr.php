<?php
error_log('kavro-stderr-marker from php');
echo "logged\n";
