"""Services the regulation's procedures call, one module per procedure (loaded by service.services)."""
