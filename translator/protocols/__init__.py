"""One codec package per protocol (``openai/``, ``anthropic/``, ``gemini/``).

The protocol names themselves are ``core.protocols.Protocol``.
"""
