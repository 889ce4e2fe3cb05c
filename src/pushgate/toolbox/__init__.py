"""The operator's and developer's workflows behind `pushgate users import`, `send`,
`campaigns`, `certs` and `demo` (docs/cli.md). The click commands are in `commands.py`; the
rest are small modules that `cli.py` loads only when one of those commands runs."""
