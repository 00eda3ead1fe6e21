"""spectralstyle: text-guided style transfer with SpectralCLIP."""
__version__ = "0.1.0"
