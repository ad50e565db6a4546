"""ustack: a user-space TCP/IP stack in Python over a Linux TUN device."""

__version__ = "0.1.0"
