"""glancesync as a service: a REST API (v1) over the CLI's engine.

Needs the ``api`` extra (``pip install 'glancesync[api]'``); the CLI never imports this
package, so a plain install stays free of the web stack.
"""
