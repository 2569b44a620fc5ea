"""Synthetic speech corpora for training and evaluation: sources, voices, augmentation, synth."""

from streamre.corpus.augment import Augmentation, augment
from streamre.corpus.sources import Entity, Sentence, SourceError, read_sentences
from streamre.corpus.swap import swap_entities
from streamre.corpus.synth import SynthPlan, Utterance, plan, run
from streamre.corpus.voices import HELD_OUT_VOICE, Voice, VoiceError, parse_voice, training_voice

__all__ = ["Augmentation", "augment", "Entity", "Sentence", "SourceError", "read_sentences",
           "swap_entities", "SynthPlan", "Utterance", "plan", "run", "HELD_OUT_VOICE", "Voice", "VoiceError",
           "parse_voice", "training_voice"]
