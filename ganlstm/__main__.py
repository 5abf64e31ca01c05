"""``python -m ganlstm`` (and ``torchrun -m ganlstm``) runs the CLI."""
from .cli import main

main()
