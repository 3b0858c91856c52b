"""What every test folder shares: the platform's processes (`platform`), the HTTP API
(`api`), sandboxes through it (`sandboxes`), Docker images and containers (`docker`), rows
written as the services write them (`rows`), the command wire tap (`commands`), WebSocket
clients (`sockets`) and waiting for a condition (`waiting`)."""
