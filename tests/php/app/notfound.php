<?php
http_response_code(404);
echo "php says: no such article\n";
