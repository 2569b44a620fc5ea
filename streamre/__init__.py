"""streamre: a streaming speech-to-knowledge-graph server for live meetings."""

from pathlib import Path

__version__ = "0.1.0"

# The source checkout holds the bundled models and the browser client beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
WEB_CLIENT_DIR = PROJECT_ROOT / "clients" / "web"

SAMPLE_RATE = 16000  # every model and the VAD work at 16 kHz mono
