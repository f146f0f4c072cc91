"""Keras building blocks usable in any model: the schema head, the losses, backbones and
models, multi-image pooling and the powerset head. Keras 3, ``keras.ops`` only (any backend);
every object is registered so ``keras.saving.load_model`` needs no ``custom_objects``."""
