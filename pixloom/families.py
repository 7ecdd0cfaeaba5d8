"""The text-to-image model families, named once for every layer (imports nothing)."""

GAN_FAMILIES = ("mlp-gan", "dcgan", "stylegan")
TOKEN_FAMILIES = ("token-ar", "maskgit")  # token transformers; each holds its frozen vq tokenizer
TEXT_TO_IMAGE_FAMILIES = TOKEN_FAMILIES + GAN_FAMILIES  # what `pixloom generate` draws with
