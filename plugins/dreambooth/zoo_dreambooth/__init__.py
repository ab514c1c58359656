"""DreamBooth for zoo's latent text-to-image models: ``zoo train dreambooth --base t2i --images DIR ...``."""
