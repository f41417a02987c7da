"""SQL of the session backend, one module per aggregate, as named constants with `$n` placeholders."""
