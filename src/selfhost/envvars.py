"""Environment variables a user sets for selfhost, named once.

The command line's options read them (click ``envvar=``) and the services read
them too; this module stays import-free so naming them costs nothing at start-up.
"""

PASSPHRASE_ENV = "SELFHOST_PASSPHRASE"  # noqa: S105 - a variable name, not a value
KEY_FILE_ENV = "SELFHOST_KEY_FILE"
#: the Ed25519 key that signs archive entries (`--sign-key`)
SIGN_KEY_ENV = "SELFHOST_SIGN_KEY"
