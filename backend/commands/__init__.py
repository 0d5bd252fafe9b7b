"""One module per ``avatar-foundry`` subcommand group; each has ``register(subparsers)``.

Handlers import heavy libraries (torch, diffusers, bpy) inside the function, so that
``avatar-foundry --help`` stays instant.
"""
