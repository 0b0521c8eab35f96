"""On-demand backups: the encrypted archive format (``archive``), what it holds and
how it is checked (``contents``), making and listing them (``service``), and the
ssh commands on the hosts (``remote``). Restore and the drill are in
:mod:`selfhost.workflows.restore`."""
