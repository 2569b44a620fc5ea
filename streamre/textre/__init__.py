"""Relations from written text: a joint entity and relation extractor on a pretrained encoder
(`model.py`), text to word pieces and back (`encoding.py`), and long text cut into sentences
(`sentences.py`)."""

from streamre.textre.model import TextREConfig, TextREModel, from_encoder
from streamre.textre.sentences import split_sentences

__all__ = ["TextREConfig", "TextREModel", "from_encoder", "split_sentences"]
