"""The source: the CoinCap-style HTTP ``client``, the ``replay`` server, the ``samples``."""
