"""Job kinds: the backend's functions as the server queues and runs them."""
