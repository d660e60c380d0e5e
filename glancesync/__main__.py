"""``python -m glancesync``: the same as the ``glancesync`` command."""


from glancesync.cli import console_main

if __name__ == "__main__":
    console_main()
