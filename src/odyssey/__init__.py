"""odyssey: will adapting a language model to your domain help, did it, why, and what to do about it."""

__version__ = "0.1.0"
