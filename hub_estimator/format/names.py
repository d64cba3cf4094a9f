"""Names of the TF1 Hub format: files of a module directory, MetaGraphDef keys.

Importable without TensorFlow (for writers that do not import it, e.g.
tools/export_text_embedding); `saved_model_io` re-exports them. The values
are TensorFlow's SavedModel conventions (tensorflow/python/saved_model/
constants.py) and tensorflow_hub's `tfhub_module.pb`.
"""

import os

MODULE_DEF_FILENAME = "tfhub_module.pb"
SAVED_MODEL_FILENAME = "saved_model.pb"
VARIABLES_DIRNAME = "variables"
VARIABLES_BASENAME = "variables"
ASSETS_DIRNAME = "assets"

# tf.compat.v1.GraphKeys.ASSET_FILEPATHS: the asset path tensors (Const nodes).
ASSET_FILEPATHS_KEY = "asset_filepaths"
# The collection of AssetFileDefs (Any) that TF1 SavedModels carry.
SAVED_MODEL_ASSETS_KEY = "saved_model_assets"
# The value of an asset path Const in a written module; loaders feed the real
# path of the file in assets/.
ASSET_PLACEHOLDER_VALUE = b"SAVEDMODEL-ASSET"


def variables_prefix(module_dir):
  """Returns the checkpoint prefix of a module directory's variables."""
  return os.path.join(module_dir, VARIABLES_DIRNAME, VARIABLES_BASENAME)
