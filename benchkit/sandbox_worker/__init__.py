"""What runs inside the sandbox: worker.py and the harnesses it forks per program (stdlib only,
run as scripts from a read-only bind, never imported by benchkit itself)."""
