"""Names and indices shared across the pipeline (data, models, strategies, metrics, reports).

Targets and logits use index 1 for bona fide and 0 for spoof, so a score
``logit[1] - logit[0]`` is higher for more bona fide speech (the ASVspoof
convention).
"""

BONAFIDE_TARGET = 1
SPOOF_TARGET = 0
NUM_CLASSES = 2
#: ``attack_codes`` data attribute of bona fide clips (training datasets: the attack of
#: every clip as an integer, for attack-balanced batches).
BONAFIDE_CODE = -1

#: ``trained_on`` of the single stage of joint training (every attack at once).
JOINT = "joint"

#: ``attack`` of bona fide rows (utterance table) and trials (score tables): no attack.
NO_ATTACK = "-"

#: Sample rate (Hz) of the audio pipeline unless ``data.sample_rate`` says otherwise: the
#: rate of ASVspoof 2019-2021, LibriSpeech (the demo corpus) and the SSL encoders.
SAMPLE_RATE = 16_000

#: ``trained_on`` of stage 0: the starting model of a run from a pretrained model
#: (``model.init``), evaluated before any training.
PRETRAINED = "pretrained"

#: Prefix of the EER-matrix columns of ``data.pretrained_eval`` (``pretrained:<attack>``):
#: what the pretrained model was trained on, evaluated after every stage, never trained on.
PRETRAINED_PREFIX = "pretrained:"
