#!/usr/bin/env python3
"""Conformance fixtures for CosyVoice 2, computed by CosyVoice's own code.

Run by hand, never in CI. It writes

  models/conformance/cosyvoice2/model/     a random-weight model directory in the exact layout of the
                                           CosyVoice2-0.5B release (cosyvoice2.yaml, llm.pt, flow.pt,
                                           hift.pt, campplus.onnx, speech_tokenizer_v2.onnx,
                                           CosyVoice-BlankEN/), with shrunk sizes;
  models/conformance/cosyvoice2/expected/  what CosyVoice's CosyVoice2 class computes on it:
                                           frontend features, greedy speech tokens, flow mel, HiFT
                                           waveform, text ids; one torch.save dict per case plus
                                           expected.json (inputs, shapes, seeds, upstream commits,
                                           sha256 of every file, upstream behaviours).

The prompt WAVs in models/conformance/cosyvoice2/prompts/ are inputs and are committed; they were made
with espeak-ng 1.51 and sox (see README.md) and are not regenerated here.

Environment
-----------
A Python 3.11 venv with: torch 2.13 (CPU), transformers 4.57.6, tokenizers 0.22.x, onnx, onnxruntime,
onnxscript, librosa, scipy, soundfile, einops, tiktoken, regex, tqdm, pyyaml, ruamel.yaml, numba,
pillow, importlib-metadata, typeguard, more-itertools, huggingface-hub. Plus these sources, each a
checkout (``git archive HEAD``) OUTSIDE this repository, named by environment variables:

  COSYVOICE_SRC    FunAudioLLM/CosyVoice (main)                      -> the `cosyvoice` package
  MATCHA_SRC       shivammehta25/Matcha-TTS (CosyVoice's submodule)   -> the `matcha` package
  HYPERPYYAML_SRC  speechbrain/HyperPyYAML                            -> `hyperpyyaml`
  DIFFUSERS_SRC    huggingface/diffusers, its src/ folder            -> `diffusers`
  WHISPER_SRC      openai/whisper                                    -> `whisper` (log_mel_spectrogram)
  CONFORMER_SRC    lucidrains/conformer                               -> `conformer` (imported by matcha)
  INFLECT_SRC      jaraco/inflect                                     -> `inflect` (English numbers)
  TORCHAUDIO_SRC   the `torchaudio` package folder of a torchaudio install whose Python parts are
                   used as they are (compliance.kaldi.fbank, transforms.Resample, transforms.Spectrogram);
                   e.g. Debian's python3-torchaudio 0.13.1 folder. Its C++ extension is never loaded.

Optional: <VAR>_GIT_DIR (e.g. COSYVOICE_SRC_GIT_DIR) names the git repository a source was extracted
from, so that expected.json records its commit and the recent history of the files that matter.

Run:

  COSYVOICE_SRC=... MATCHA_SRC=... HYPERPYYAML_SRC=... DIFFUSERS_SRC=... WHISPER_SRC=... \\
  CONFORMER_SRC=... INFLECT_SRC=... TORCHAUDIO_SRC=... \\
  VENV/bin/python models/conformance/generate_cosyvoice2.py [--stage model|expected|all]

`model` writes the model directory only, `expected` (re)computes expected/ from the committed model
directory, `all` (default) does both. Everything is seeded; rerunning on the same versions gives the
same tensors.

Stubs (modules created at run time in a temporary folder, never committed)
----------------------------------------------------------------------------
CosyVoice imports these at import time; none is on its inference path, or the stub does what the real
module does there:

  modelscope   snapshot_download, called only when model_dir does not exist (never here).
  omegaconf    DictConfig: the yaml builds cfm_params with `!new:omegaconf.DictConfig {content: ...}`
               and ConditionalCFM reads fields as attributes; the stub is a dict with attribute
               access. The real omegaconf needs antlr4-python3-runtime 4.9, which this machine lacks.
  hydra, lightning, gdown, wget, matplotlib
               imported by matcha/utils/__init__.py for training, logging and plotting helpers.
  pyarrow, pyworld
               imported by cosyvoice/dataset/processor.py, the training data pipeline that the yaml
               names with !name: tags; inference never calls it.
               lightning's rank_zero_only is the identity (one process).
  torchaudio   a package whose __path__ adds TORCHAUDIO_SRC, so compliance.kaldi, functional and
               transforms are torchaudio's own Python code; `torchaudio.load(path, backend='soundfile')`
               is `soundfile.read(path, dtype='float32', always_2d=True)` transposed to [C, T], which is
               what torchaudio's soundfile backend returns. torch.ops.torchaudio (the C++ extension,
               never loaded) is replaced by an object whose is_*_available() return False and whose
               other ops raise when called; torchaudio 0.13 only probes them at import.
  transformers 4.57.6 checks huggingface-hub<1.0 at import; the mirror has only 1.x, so the check is
               told 0.36.0 during that import. Only local directories are loaded.
  ruamel.yaml  0.19 (the only one in the mirror) has no Loader.max_depth, which its composer reads
               when hyperpyyaml passes the old-API Loader; the generator sets it to 0 (no limit, the
               default of ruamel's own YAML()).

Deviations from CosyVoice's code path (each also in expected.json)
------------------------------------------------------------------
  * Greedy decoding: `model.llm.sampling` (the yaml's ras_sampling) is replaced by
    ``lambda weighted_scores, decoded_tokens, sampling: int(weighted_scores.argmax())``. Everything
    around it is CosyVoice's: Qwen2LM.inference builds the input and min_len/max_len,
    sampling_ids sets logp[eos=6561] = -inf while i < min_len, inference_wrapper stops on any of
    6561/6562/6563 and after max_len tokens. torch.argmax returns the first index among ties.
  * HiFT: `torch.manual_seed(HIFT_SEED)` right before each `hift.inference` call (the NSF source
    draws random noise).
  * Text normalization: neither ttsfrd nor wetext is installed, so CosyVoice's frontend runs with
    text_frontend == '' (its own fallback): Chinese text gets CosyVoice's replace_blank /
    replace_corner_mark / '.'->'。' / remove_bracket / trailing-comma rules; English text gets
    spell_out_number (inflect). Recorded per case.
  * CPU only (no CUDA on this machine), fp32, no JIT/TRT/vLLM.
"""
import argparse
import hashlib
import importlib.metadata as _md
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, 'cosyvoice2')
MODEL = os.path.join(ROOT, 'model')
EXPECTED = os.path.join(ROOT, 'expected')
PROMPTS = os.path.join(ROOT, 'prompts')

SEED = 20261129
HIFT_SEED = 1234
EOS_BIAS = 14.0
N_TEXT_VOCAB = 640          # BPE vocabulary of the tiny CosyVoice-BlankEN, before special tokens
QWEN = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)

# ------------------------------------------------------------------------------------------------
# Environment: sources on sys.path, stubs in a temporary folder.
# ------------------------------------------------------------------------------------------------
STUBS = {
    'modelscope/__init__.py': '''
        def snapshot_download(*a, **k):
            raise RuntimeError("stub modelscope: no downloads in the conformance generator")
    ''',
    'omegaconf/__init__.py': '''
        import contextlib
        class DictConfig(dict):
            def __init__(self, content=None, **kw):
                super().__init__(content or {}, **kw)
            def __getattr__(self, k):
                try:
                    return self[k]
                except KeyError as e:
                    raise AttributeError(k) from e
        class OmegaConf:
            pass
        def open_dict(cfg):
            return contextlib.nullcontext(cfg)
    ''',
    'hydra/__init__.py': '',
    'hydra/utils.py': '',
    'hydra/core/__init__.py': '',
    'hydra/core/hydra_config.py': 'class HydraConfig: pass\n',
    'lightning/__init__.py': 'class Callback: pass\n',
    'lightning/pytorch/__init__.py': '',
    'lightning/pytorch/loggers.py': 'class Logger: pass\n',
    'lightning/pytorch/utilities.py': 'def rank_zero_only(f): return f\n',
    'gdown/__init__.py': '',
    'wget/__init__.py': '',
    'matplotlib/__init__.py': 'def use(*a, **k): pass\n',
    'matplotlib/pyplot.py': '',
    'matplotlib/pylab.py': '',
    # pyarrow, pyworld: imported by cosyvoice/dataset/processor.py (training data pipeline), which the
    # yaml names with !name: tags (parquet_opener, compute_f0, ...); inference never calls them.
    'pyarrow/__init__.py': '',
    'pyarrow/parquet.py': '',
    'pyworld/__init__.py': '',
    'torchaudio/__init__.py': '''
        import os as _os
        __path__.append(_os.environ["TORCHAUDIO_SRC"])
        import torch as _torch
        def _unavailable(*a, **k):
            raise RuntimeError("torchaudio C++ op not available in the conformance generator")
        class _NoOps:
            # torch.ops.torchaudio without the C++ extension: is_*_available() is False, any other
            # op raises when called (probed at import by functional/filtering.py; never called here).
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                if name.startswith("is_") and name.endswith("_available"):
                    return lambda: False
                return _unavailable
        setattr(_torch.ops, "torchaudio", _NoOps())
        def load(path, backend=None, **kw):
            import soundfile, torch
            data, sr = soundfile.read(path, dtype="float32", always_2d=True)
            return torch.from_numpy(data.T.copy()), sr
    ''',
}
SOURCES = ['COSYVOICE_SRC', 'MATCHA_SRC', 'HYPERPYYAML_SRC', 'DIFFUSERS_SRC', 'WHISPER_SRC',
           'CONFORMER_SRC', 'INFLECT_SRC']


def bootstrap():
    for var in SOURCES + ['TORCHAUDIO_SRC']:
        if not os.environ.get(var) or not os.path.isdir(os.environ[var]):
            sys.exit(f'error: environment variable {var} must name a folder (see this file\'s docstring)')
    stub_dir = tempfile.mkdtemp(prefix='cosyvoice-stubs-')
    for rel, text in STUBS.items():
        p = os.path.join(stub_dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'w') as f:
            f.write(textwrap.dedent(text))
    sys.path[:0] = [stub_dir] + [os.environ[v] for v in SOURCES]
    real = _md.version
    _md.version = lambda p: '0.36.0' if p.replace('_', '-').lower() == 'huggingface-hub' else real(p)
    try:
        import transformers  # noqa: F401
        import diffusers  # noqa: F401
    finally:
        _md.version = real
    # ruamel.yaml 0.19's old-API Loader lacks the max_depth attribute its composer reads; hyperpyyaml
    # passes that Loader. 0 means "no limit", ruamel's own default.
    import ruamel.yaml
    if not hasattr(ruamel.yaml.Loader, 'max_depth'):
        ruamel.yaml.Loader.max_depth = 0


def _git(var, *args):
    """git in the source's own checkout, or in the bare repository named by <VAR>_GIT_DIR (a source
    extracted with `git archive` has no .git)."""
    gd = os.environ.get(var + '_GIT_DIR')
    cmd = ['git', '--git-dir', gd] if gd else ['git', '-C', os.environ[var]]
    try:
        return subprocess.run(cmd + list(args), capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return None


def git_head(var):
    return _git(var, 'rev-parse', 'HEAD') or os.environ.get(var + '_COMMIT', 'unknown')


# ------------------------------------------------------------------------------------------------
# Stage 1: the model directory.
# ------------------------------------------------------------------------------------------------
CORPUS = """\
Hello world, this is a conformance test.
This is a short voice prompt, recorded for the conformance test of the speaker features.
The quick brown fox jumps over the lazy dog.
The meeting starts at nine sharp, please do not be late.
A steady voice reads the weather report every morning.
Speech synthesis turns written text into sound.
Numbers such as one, two, three and twenty one are spelled out.
She sells sea shells by the sea shore.
We tested the model with several sentences in English and Chinese.
Good evening, and welcome to the evening news.
你好，世界。今天天气很好。
这是一段测试用的提示语音。
我们用中文和英文的句子来测试这个模型。
语音合成把文字变成声音。
早上好，欢迎收听今天的新闻。
请保持安静，会议马上开始。
他说明天会下雨，我们不去公园了。
这个句子里有一些常用的汉字。
春眠不觉晓，处处闻啼鸟。
北京上海广州深圳都是大城市。
"""

YAML = """\
# Random-weight CosyVoice2 model for Timbre's conformance fixtures: the structure of CosyVoice2-0.5B's
# cosyvoice2.yaml (CosyVoice examples/libritts/cosyvoice2/conf/cosyvoice2.yaml) with shrunk sizes.
# Written by models/conformance/generate_cosyvoice2.py. NOT a speaking model.
__set_seed1: !apply:random.seed [1986]
__set_seed2: !apply:numpy.random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]
__set_seed4: !apply:torch.cuda.manual_seed_all [1986]

# fixed params
sample_rate: 24000
llm_input_size: {hidden}
llm_output_size: {hidden}
spk_embed_dim: 192
qwen_pretrain_path: ''
token_frame_rate: 25
token_mel_ratio: 2

# stream related params
chunk_size: 25 # streaming inference chunk size, in token
num_decoding_left_chunks: -1 # streaming inference flow decoder left chunk size, <0 means use all left chunks

# model params
llm: !new:cosyvoice.llm.llm.Qwen2LM
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    speech_token_size: 6561
    length_normalized_loss: True
    lsm_weight: 0
    mix_ratio: [5, 15]
    llm: !new:cosyvoice.llm.llm.Qwen2Encoder
        pretrain_path: !ref <qwen_pretrain_path>
    sampling: !name:cosyvoice.utils.common.ras_sampling
        top_p: 0.8
        top_k: 25
        win_size: 10
        tau_r: 0.1

flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec
    input_size: 512
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    input_frame_rate: !ref <token_frame_rate>
    only_mask_loss: True
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    encoder: !new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder
        output_size: 512
        attention_heads: 8
        linear_units: 64
        num_blocks: 1
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: 512
        use_cnn_module: False
        macaron_style: False
        static_chunk_size: !ref <chunk_size>
    decoder: !new:cosyvoice.flow.flow_matching.CausalConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.CausalConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [64]
            dropout: 0.0
            attention_head_dim: 16
            n_blocks: 1
            num_mid_blocks: 2
            num_heads: 2
            act_fn: 'gelu'
            static_chunk_size: !ref <chunk_size> * <token_mel_ratio>
            num_decoding_left_chunks: !ref <num_decoding_left_chunks>

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: 32
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 32

# gan related module
mel_spec_transform1: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: null
    center: False
hifigan: !new:cosyvoice.hifigan.hifigan.HiFiGan
    generator: !ref <hift>
    discriminator: !new:cosyvoice.hifigan.discriminator.MultipleDiscriminator
        mpd: !new:matcha.hifigan.models.MultiPeriodDiscriminator
        mrd: !new:cosyvoice.hifigan.discriminator.MultiResSpecDiscriminator
    mel_spec_transform: [
        !ref <mel_spec_transform1>
    ]

# processor functions
parquet_opener: !name:cosyvoice.dataset.processor.parquet_opener
get_tokenizer: !name:cosyvoice.tokenizer.tokenizer.get_qwen_tokenizer
    token_path: !ref <qwen_pretrain_path>
    skip_special_tokens: True
allowed_special: 'all'
tokenize: !name:cosyvoice.dataset.processor.tokenize
    get_tokenizer: !ref <get_tokenizer>
    allowed_special: !ref <allowed_special>
filter: !name:cosyvoice.dataset.processor.filter
    max_length: 6000
    min_length: 100
    token_max_length: 200
    token_min_length: 1
resample: !name:cosyvoice.dataset.processor.resample
    resample_rate: !ref <sample_rate>
truncate: !name:cosyvoice.dataset.processor.truncate
    truncate_length: 24480 # must be a multiplier of hop_size
feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: 8000
    center: False
compute_fbank: !name:cosyvoice.dataset.processor.compute_fbank
    feat_extractor: !ref <feat_extractor>
    num_frames: 960
compute_whisper_fbank: !name:cosyvoice.dataset.processor.compute_whisper_fbank
    num_frames: 960
compute_f0: !name:cosyvoice.dataset.processor.compute_f0
    sample_rate: !ref <sample_rate>
    hop_size: 480
parse_embedding: !name:cosyvoice.dataset.processor.parse_embedding
    normalize: True
shuffle: !name:cosyvoice.dataset.processor.shuffle
    shuffle_size: 1000
sort: !name:cosyvoice.dataset.processor.sort
    sort_size: 500  # sort_size should be less than shuffle_size
batch: !name:cosyvoice.dataset.processor.batch
    batch_type: 'dynamic'
    max_frames_in_batch: 2000
padding: !name:cosyvoice.dataset.processor.padding
    use_spk_embedding: False # change to True during sft

# dataset processor pipeline
data_pipeline: [
    !ref <parquet_opener>,
    !ref <tokenize>,
    !ref <filter>,
    !ref <resample>,
    !ref <compute_fbank>,
    !ref <parse_embedding>,
    !ref <compute_whisper_fbank>,
    !ref <shuffle>,
    !ref <sort>,
    !ref <batch>,
    !ref <padding>,
]
data_pipeline_gan: [
    !ref <parquet_opener>,
    !ref <tokenize>,
    !ref <filter>,
    !ref <resample>,
    !ref <truncate>,
    !ref <compute_fbank>,
    !ref <compute_f0>,
    !ref <parse_embedding>,
    !ref <shuffle>,
    !ref <sort>,
    !ref <batch>,
    !ref <padding>,
]

# llm flow train conf
train_conf:
    optim: adam
    optim_conf:
        lr: 1e-5 # change to 1e-5 during sft
    scheduler: constantlr # change to constantlr during sft
    scheduler_conf:
        warmup_steps: 2500
    max_epoch: 200
    grad_clip: 5
    accum_grad: 2
    log_interval: 100
    save_per_step: -1

# gan train conf
train_conf_gan:
    optim: adam
    optim_conf:
        lr: 0.0002 # use small lr for gan training
    scheduler: constantlr
    optim_d: adam
    optim_conf_d:
        lr: 0.0002 # use small lr for gan training
    scheduler_d: constantlr
    max_epoch: 200
    grad_clip: 5
    accum_grad: 1 # in gan training, accum_grad must be 1
    log_interval: 100
    save_per_step: -1
"""

QWEN_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']


def write_tokenizer(blank):
    """A byte-level BPE in Qwen2's on-disk format (vocab.json, merges.txt, tokenizer_config.json)."""
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    # Qwen2's pre-tokenization: its split regex, then byte-level mapping (no prefix space).
    qwen_split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen_split), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=N_TEXT_VOCAB, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    os.makedirs(blank, exist_ok=True)
    tok.model.save(blank)  # vocab.json, merges.txt
    n = tok.get_vocab_size()
    added = {str(n + i): {'content': t, 'lstrip': False, 'normalized': False, 'rstrip': False,
                          'single_word': False, 'special': True} for i, t in enumerate(QWEN_SPECIALS)}
    cfg = {
        'add_prefix_space': False,
        'added_tokens_decoder': added,
        'additional_special_tokens': ['<|im_start|>', '<|im_end|>'],
        'bos_token': None,
        'chat_template': None,
        'clean_up_tokenization_spaces': False,
        'eos_token': '<|endoftext|>',
        'errors': 'replace',
        'model_max_length': 32768,
        'pad_token': '<|endoftext|>',
        'split_special_tokens': False,
        'tokenizer_class': 'Qwen2Tokenizer',
        'unk_token': None,
    }
    with open(os.path.join(blank, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write('\n')
    return n + len(QWEN_SPECIALS)


def quantize_(module, step):
    """Rounds every float parameter to a multiple of `step` (exact in fp32): same shapes, same code
    path, but the files compress well in git."""
    import torch
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.round(p / step) * step + 0.0)  # + 0.0 turns -0.0 into 0.0


def sparsify_(module, density, min_numel):
    """Keeps a random `density` share of the entries of every weight with at least `min_numel`
    entries (the rest exactly 0), scaled by 1/sqrt(density) to keep the variance. CosyVoice 2 hard-codes
    512 channels in the flow encoder (PreLookaheadLayer, Upsample1D), so its matrices cannot shrink;
    sparse weights make them compress in git."""
    import torch
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() >= min_numel:
                keep = torch.rand(p.shape) < density
                p.copy_(torch.where(keep, p / density ** 0.5, torch.zeros_like(p)))


def build_model():
    import torch
    import transformers
    from hyperpyyaml import load_hyperpyyaml
    os.makedirs(MODEL, exist_ok=True)
    blank = os.path.join(MODEL, 'CosyVoice-BlankEN')
    n_tok = write_tokenizer(blank)
    # CosyVoice2Tokenizer adds up to 19 more special tokens; leave room, as the release does (151936).
    vocab_size = ((n_tok + 19 + 63) // 64) * 64
    torch.manual_seed(SEED)
    cfg = transformers.Qwen2Config(
        vocab_size=vocab_size, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=32768, max_window_layers=QWEN['num_hidden_layers'],
        bos_token_id=n_tok - 3, eos_token_id=n_tok - 3, hidden_act='silu',
        attention_dropout=0.0, torch_dtype='float32', initializer_range=0.3, use_cache=True, **QWEN)
    qwen = transformers.Qwen2ForCausalLM(cfg)
    qwen.save_pretrained(blank, safe_serialization=True)
    with open(os.path.join(MODEL, 'cosyvoice2.yaml'), 'w') as f:
        f.write(YAML.format(hidden=QWEN['hidden_size']))
    with open(os.path.join(MODEL, 'cosyvoice2.yaml')) as f:
        configs = load_hyperpyyaml(f, overrides={'qwen_pretrain_path': blank})
    llm, flow, hift = configs['llm'], configs['flow'], configs['hift']
    torch.manual_seed(SEED + 1)
    with torch.no_grad():
        # Qwen2 weights at std 0.3 (initializer_range above) so that the context, not only the last
        # input, decides the next token; embeddings on the same scale; spread logits; eos (6561)
        # favoured by EOS_BIAS so that greedy decoding can stop before max_len.
        llm.llm_decoder.weight.normal_(0, 0.5)
        llm.llm_decoder.bias.normal_(0, 0.5)
        llm.llm_decoder.bias[6561] += EOS_BIAS
        # 6562/6563 also stop decoding and, unlike eos, are not masked below min_len (upstream
        # behaviour); a trained model never predicts them, so keep them out of reach here.
        llm.llm_decoder.bias[6562:6564] = -20.0
        llm.speech_embedding.weight.normal_(0, 0.15)
        llm.llm_embedding.weight.normal_(0, 0.15)
    sparsify_(flow, 0.02, 100_000)
    quantize_(llm.llm, 2 ** -8)
    for m in (llm.llm_embedding, llm.speech_embedding, llm.llm_decoder):
        quantize_(m, 2 ** -4)
    quantize_(flow, 2 ** -7)
    quantize_(hift, 2 ** -10)
    torch.save(llm.state_dict(), os.path.join(MODEL, 'llm.pt'))
    torch.save(flow.state_dict(), os.path.join(MODEL, 'flow.pt'))
    torch.save(hift.state_dict(), os.path.join(MODEL, 'hift.pt'))
    write_campplus(os.path.join(MODEL, 'campplus.onnx'))
    write_speech_tokenizer(os.path.join(MODEL, 'speech_tokenizer_v2.onnx'))


def write_campplus(path):
    """A small speaker encoder with CAM++'s ONNX signature: input "input" float32 [B, T, 80] -> [B, 192]."""
    import torch

    class SpeakerNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(80, 64, 3, padding=1)
            self.conv2 = torch.nn.Conv1d(64, 64, 3, padding=2, dilation=2)
            self.proj = torch.nn.Linear(128, 192)

        def forward(self, x):
            h = torch.relu(self.conv1(x.transpose(1, 2)))
            h = torch.relu(self.conv2(h))
            stats = torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1)
            return self.proj(stats)

    torch.manual_seed(SEED + 2)
    net = SpeakerNet().eval()
    quantize_(net, 2 ** -10)
    torch.onnx.export(net, (torch.randn(1, 200, 80),), path, input_names=['input'], output_names=['embedding'],
                      dynamic_axes={'input': {0: 'B', 1: 'T'}, 'embedding': {0: 'B'}}, opset_version=17,
                      dynamo=False)


def write_speech_tokenizer(path):
    """A small FSQ tokenizer with S3Tokenizer-v2's ONNX signature: "feats" float32 [1, 128, T] and
    "feats_length" int32 [1] -> "indices" int64 [1, N], N = ceil(ceil(T/2)/2) limited by feats_length,
    ids = sum_i (q_i + 1) * 3^i with q_i in {-1, 0, 1} (3^8 = 6561 codes, 25 tokens/s)."""
    import torch

    class Tokenizer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv2 = torch.nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.proj = torch.nn.Linear(64, 8)
            self.register_buffer('powers', torch.tensor([3 ** i for i in range(8)], dtype=torch.int64))

        def forward(self, feats, feats_length):
            h = torch.nn.functional.gelu(self.conv1(feats))
            h = torch.nn.functional.gelu(self.conv2(h))
            z = torch.tanh(self.proj(h.transpose(1, 2)))  # [1, N, 8]
            q = torch.round(z).to(torch.int64) + 1        # {0, 1, 2}
            idx = (q * self.powers).sum(dim=2)            # [1, N]
            n = (feats_length.to(torch.int64) + 3) // 4
            return idx[:, :n[0]]

    torch.manual_seed(SEED + 3)
    net = Tokenizer().eval()
    with torch.no_grad():
        net.proj.weight.mul_(8.0)
    quantize_(net, 2 ** -10)
    t = 400
    torch.onnx.export(net, (torch.randn(1, 128, t), torch.tensor([t], dtype=torch.int32)), path,
                      input_names=['feats', 'feats_length'], output_names=['indices'],
                      dynamic_axes={'feats': {2: 'T'}, 'indices': {1: 'N'}}, opset_version=17, dynamo=False)


# ------------------------------------------------------------------------------------------------
# Stage 2: CosyVoice's outputs on that directory.
# ------------------------------------------------------------------------------------------------
PROMPT_CASES = [
    # id, wav, transcript (the zh one ends in an ASCII '.', which CosyVoice's zh normalization turns into '。')
    ('en16k', 'prompt_en_16k.wav',
     'This is a short voice prompt, recorded for the conformance test of the speaker features.'),
    ('zh48k', 'prompt_zh_48k.wav', '这是一段测试用的提示语音.'),
]
TEXT_CASES = [
    # id, prompt id, text
    ('en_hello', 'en16k', 'Hello world, this is a conformance test.'),
    ('zh_weather', 'zh48k', '你好，世界。今天天气很好。'),
    ('en_number_zhprompt', 'zh48k', 'The meeting starts at 9 sharp.'),
    ('zh_enprompt', 'en16k', '语音合成把文字变成声音。'),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()


def shape(t):
    return list(t.shape)


def compute_expected():
    import numpy as np
    import torch
    from cosyvoice.cli.cosyvoice import CosyVoice2
    os.makedirs(EXPECTED, exist_ok=True)
    t0 = time.time()
    cosy = CosyVoice2(MODEL, load_jit=False, load_trt=False, load_vllm=False, fp16=False)
    t_load = time.time() - t0
    fe, model = cosy.frontend, cosy.model
    out = {'format': 'timbre-conformance/1', 'model': 'cosyvoice2', 'prompts': [], 'cases': []}

    # Greedy decoding in place of the yaml's ras_sampling (see docstring).
    # Each step's margin (top-1 minus top-2 of the masked logp) is recorded: it tells how far a
    # re-implementation's logits may drift before a greedy token flips.
    margins = []

    def greedy(weighted_scores, decoded_tokens, sampling):
        top2 = torch.topk(weighted_scores, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        return int(weighted_scores.argmax())

    model.llm.sampling = greedy

    # 1. Frontend features of each prompt, as add_zero_shot_spk stores them in spk2info.
    for pid, wav, ptext in PROMPT_CASES:
        wav_path = os.path.join(PROMPTS, wav)
        assert cosy.add_zero_shot_spk(ptext, wav_path, pid)
        entry = fe.spk2info[pid]
        fname = f'prompt_{pid}.pt'
        torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, os.path.join(EXPECTED, fname))
        import soundfile
        info = soundfile.info(wav_path)
        out['prompts'].append({
            'id': pid, 'prompt_wav': f'../prompts/{wav}', 'sample_rate': info.samplerate,
            'frames': info.frames, 'prompt_text': ptext, 'fixture': fname,
            'note': 'spk2info entry from CosyVoice2.add_zero_shot_spk: prompt_text is NOT normalized here',
            'tensors': {k: {'shape': shape(v), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in entry.items()},
        })

    # 2. Zero-shot synthesis, non-streamed, the inline path (zero_shot_spk_id='').
    captured = {}
    orig_fz, orig_flow, orig_hift = fe.frontend_zero_shot, model.flow.inference, model.hift.inference

    def fz(*a, **k):
        r = orig_fz(*a, **k)
        captured['model_input'] = {kk: vv.detach().cpu().clone() for kk, vv in r.items() if torch.is_tensor(vv)}
        return r

    def flow_inf(**k):
        mel, cache = orig_flow(**k)
        captured['flow_in'] = {kk: (vv.detach().cpu().clone() if torch.is_tensor(vv) else vv) for kk, vv in k.items()}
        captured['mel'] = mel.detach().cpu().clone()
        return mel, cache

    def hift_inf(speech_feat, cache_source=torch.zeros(1, 1, 0)):
        captured['hift_in'] = speech_feat.detach().cpu().clone()
        torch.manual_seed(HIFT_SEED)
        speech, source = orig_hift(speech_feat=speech_feat, cache_source=cache_source)
        captured['wav'] = speech.detach().cpu().clone()
        captured['source'] = source.detach().cpu().clone()
        return speech, source

    fe.frontend_zero_shot, model.flow.inference, model.hift.inference = fz, flow_inf, hift_inf
    prompts = {p[0]: p for p in PROMPT_CASES}
    for cid, pid, text in TEXT_CASES:
        _, wav, ptext = prompts[pid]
        wav_path = os.path.join(PROMPTS, wav)
        norm_text = fe.text_normalize(text, split=True, text_frontend=True)
        norm_prompt = fe.text_normalize(ptext, split=False, text_frontend=True)
        assert len(norm_text) == 1, f'{cid}: expected one segment, got {norm_text}'
        captured.clear()
        margins.clear()
        t1 = time.time()
        outputs = list(cosy.inference_zero_shot(text, ptext, wav_path, stream=False, speed=1.0, text_frontend=True))
        dt = time.time() - t1
        assert len(outputs) == 1
        mi = captured['model_input']
        tokens = captured['flow_in']['token'].to(torch.int32)
        text_ids = mi['text']
        n_text = int(mi['text_len'][0])
        min_len, max_len = int(n_text * 2), int(n_text * 20)
        stop = 'max_len' if tokens.shape[1] == max_len else 'stop_token'
        assert torch.equal(outputs[0]['tts_speech'], captured['wav'])
        tensors = {
            'text_ids': text_ids.to(torch.int32),
            'prompt_text_ids': mi['prompt_text'].to(torch.int32),
            'llm_prompt_speech_token': mi['llm_prompt_speech_token'].to(torch.int32),
            'flow_prompt_speech_token': mi['flow_prompt_speech_token'].to(torch.int32),
            'prompt_speech_feat': mi['prompt_speech_feat'].float(),
            'embedding': mi['flow_embedding'].float(),
            'speech_tokens': tokens.contiguous(),
            'mel': captured['mel'].float().contiguous(),
            'wav': captured['wav'].float().contiguous(),
            'hift_source': captured['source'].float().contiguous(),
            'greedy_margin': torch.tensor(margins, dtype=torch.float32),
        }
        fname = f'case_{cid}.pt'
        torch.save(tensors, os.path.join(EXPECTED, fname))
        ids_plain = fe.tokenizer.encode(text)
        out['cases'].append({
            'id': cid, 'prompt': pid, 'text': text, 'prompt_text': ptext,
            'normalized_text': norm_text[0], 'normalized_prompt_text': norm_prompt,
            'text_ids_of_raw_text': ids_plain,
            'text_ids': text_ids[0].tolist(), 'prompt_text_ids': mi['prompt_text'][0].tolist(),
            'speech_tokens': tokens[0].tolist(),
            'min_len': min_len, 'max_len': max_len, 'ended_by': stop,
            'greedy_margin_min': min(margins), 'greedy_steps': len(margins),
            'fixture': fname, 'seconds': round(dt, 2),
            'tensors': {k: {'shape': shape(v), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in tensors.items()},
            'wav_stats': {'max_abs': float(captured['wav'].abs().max()), 'rms': float(captured['wav'].pow(2).mean().sqrt())},
            'mel_stats': {'min': float(captured['mel'].min()), 'max': float(captured['mel'].max())},
        })
        print(f'{cid}: text {n_text} ids, {tokens.shape[1]} tokens ({stop}), mel {shape(captured["mel"])}, '
              f'wav {shape(captured["wav"])}, {dt:.1f}s', flush=True)

    # 3. Text ids from transformers' own Qwen2 tokenizer (through CosyVoice's get_tokenizer).
    tok_texts = [c[2] for c in TEXT_CASES] + [p[2] for p in PROMPT_CASES] + [
        '<|endofprompt|>[breath]Hello<strong>world</strong>', '', ' leading space', '混合 mixed 文本 text']
    out['tokenizer'] = {
        'class': type(fe.tokenizer.tokenizer).__name__,
        'len': len(fe.tokenizer.tokenizer),
        'special_tokens': {t: fe.tokenizer.tokenizer.convert_tokens_to_ids(t)
                           for t in QWEN_SPECIALS + fe.tokenizer.special_tokens['additional_special_tokens']},
        'encodings': [{'text': t, 'ids': fe.tokenizer.encode(t)} for t in tok_texts],
    }
    out['text_frontend'] = fe.text_frontend or 'none (neither ttsfrd nor wetext installed: CosyVoice\'s fallback)'
    out['timing_seconds'] = {'load': round(t_load, 2)}
    return out


# Streamed cases: (id, prompt id, number of speech tokens, token seed). The tokens are fed to
# CosyVoice2Model.tts(stream=True) in place of the LLM (see compute_streamed); their count is chosen so that the
# hops cover CosyVoice's plan: s_en200 (prompt 143 tokens, pad 7) -> hops 32, 50, 100 and an 18-token flush;
# s_zh60 (prompt 107, pad 18) -> one 43-token hop and a 17-token flush.
STREAM_CASES = [('s_en200', 'en16k', 200, 31), ('s_zh60', 'zh48k', 60, 32)]


def compute_streamed():
    """Upstream's chunked streaming on the committed model directory: for each STREAM_CASES entry, a FRESH
    CosyVoice2Model (so that the hop length, which upstream keeps on the model object and grows per hop, starts at
    25 as for a first request) runs tts(stream=True) with the prompt's spk2info features; its LLM thread is replaced
    by one that appends the case's tokens at once and ends (the flow/HiFT path is upstream's own). torch.manual_seed
    (HIFT_SEED) once before the run: HiFT's draws continue on the global generator from hop to hop (no other draw
    happens in between). Also the non-streamed output of the same tokens (fresh model, same seed) for the relation
    between the two. Writes expected/stream_<id>.pt and expected/streamed.json; the other fixtures are untouched."""
    import torch
    from cosyvoice.cli.cosyvoice import CosyVoice2
    from cosyvoice.cli.model import CosyVoice2Model
    cosy = CosyVoice2(MODEL, load_jit=False, load_trt=False, load_vllm=False, fp16=False)
    base = cosy.model
    out = {'format': 'timbre-conformance-streamed/1', 'hift_seed': HIFT_SEED, 'cases': []}

    def fresh():
        m = CosyVoice2Model(base.llm, base.flow, base.hift, False)
        return m

    def run(m, spk, tokens, stream):
        calls = []
        orig_flow = m.flow.inference

        def flow_inf(**k):
            mel, cache = orig_flow(**k)
            calls.append({'tokens': int(k['token'].shape[1]), 'streaming': bool(k['streaming']),
                          'finalize': bool(k['finalize']), 'mel': mel.detach().cpu().clone()})
            return mel, cache

        def llm_job(text, prompt_text, llm_prompt_speech_token, llm_embedding, uuid):
            m.tts_speech_token_dict[uuid].extend(tokens)
            m.llm_end_dict[uuid] = True

        m.flow.inference, m.llm_job = flow_inf, llm_job
        try:
            torch.manual_seed(HIFT_SEED)
            chunks = [o['tts_speech'].detach().cpu().clone() for o in m.tts(
                text=torch.zeros(1, 1, dtype=torch.int32), flow_embedding=spk['flow_embedding'],
                llm_embedding=spk['llm_embedding'], prompt_text=spk['prompt_text'],
                llm_prompt_speech_token=spk['llm_prompt_speech_token'],
                flow_prompt_speech_token=spk['flow_prompt_speech_token'],
                prompt_speech_feat=spk['prompt_speech_feat'], stream=stream)]
        finally:
            del m.flow.inference
        return chunks, calls

    for cid, pid, n, seed in STREAM_CASES:
        spk = torch.load(os.path.join(EXPECTED, f'prompt_{pid}.pt'))
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, 6561, (n,), generator=g).tolist()
        chunks, calls = run(fresh(), spk, tokens, True)
        whole, _ = run(fresh(), spk, tokens, False)
        wav = torch.cat(chunks, dim=1)
        ref = whole[0]
        assert wav.shape == ref.shape, (wav.shape, ref.shape)
        # the new mel of every flow call (token2wav keeps mel[:, :, token_offset * 2:])
        offsets, mels, hops = [], [], []
        offset = 0
        for c in calls:
            used = c['tokens'] - (0 if c['finalize'] else 3)
            new = c['mel'][:, :, offset * 2:]
            mels.append(new)
            hops.append({'offset': offset, 'tokens_in': c['tokens'], 'hop': used - offset, 'streaming': c['streaming'],
                         'finalize': c['finalize'], 'mel_frames': int(new.shape[2])})
            offsets.append(offset)
            offset = used
        lengths = [int(c.shape[1]) for c in chunks]
        diff = (wav - ref)[0]
        tensors = {'prompt_text': spk['prompt_text'].to(torch.int32),
                   'flow_prompt_speech_token': spk['flow_prompt_speech_token'].to(torch.int32),
                   'prompt_speech_feat': spk['prompt_speech_feat'].float(), 'embedding': spk['flow_embedding'].float(),
                   'speech_tokens': torch.tensor([tokens], dtype=torch.int32),
                   'hop_mel': torch.cat(mels, dim=2).float().contiguous(),
                   'wav': wav.float().contiguous(),
                   'chunk_samples': torch.tensor(lengths, dtype=torch.int64)}
        fname = f'stream_{cid}.pt'
        torch.save(tensors, os.path.join(EXPECTED, fname))
        bounds = [sum(lengths[:i + 1]) for i in range(len(lengths) - 1)]
        out['cases'].append({
            'id': cid, 'prompt': pid, 'prompt_tokens': int(spk['flow_prompt_speech_token'].shape[1]),
            'speech_tokens': n, 'token_seed': seed, 'fixture': fname, 'hops': hops, 'chunk_samples': lengths,
            'seams': bounds,
            'non_streamed_vs_streamed': {
                'max_abs': float(diff.abs().max()), 'rms': float(diff.pow(2).mean().sqrt()),
                'rms_of_non_streamed': float(ref.pow(2).mean().sqrt()),
                'rms_first_hop_region': float(diff[:bounds[0]].pow(2).mean().sqrt()) if bounds else None},
            'tensors': {k: {'shape': shape(v), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in tensors.items()},
        })
        print(f'{cid}: {n} tokens, hops {[h["hop"] for h in hops]}, chunks {lengths}, '
              f'|stream - non-stream| max {float(diff.abs().max()):.3g}', flush=True)
    out['upstream'] = {'cosyvoice_commit': git_head('COSYVOICE_SRC'),
                       'history': {'cosyvoice/cli/model.py': git_log('COSYVOICE_SRC', 'cosyvoice/cli/model.py')},
                       'behaviour': ('CosyVoice2Model.tts(stream=True): token_hop_len 25 (grown x2 per hop to 100 on the '
                                     'model object), first hop + ceil(prompt/25)*25 - prompt, a hop needs hop + 3 tokens; '
                                     'token2wav(stream=True, finalize=False) per hop, the flush token2wav(finalize=True) '
                                     'without stream (so streaming=False); HiFT cache 8 mel frames / 3840 source samples, '
                                     'np.hamming(7680) fade_in_out, last 3840 samples held back.')}
    files = {}
    for cs in out['cases']:
        p = os.path.join(EXPECTED, cs['fixture'])
        files[cs['fixture']] = {'sha256': sha256(p), 'bytes': os.path.getsize(p)}
    out['files'] = files
    with open(os.path.join(EXPECTED, 'streamed.json'), 'w') as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write('\n')


def upstream_notes():
    return {
        'sampling': ('cosyvoice/utils/common.py ras_sampling(top_p=0.8, top_k=25, win_size=10, tau_r=0.1): '
                     'nucleus_sampling sorts softmax(logp) descending (stable), keeps tokens while cum_prob < top_p '
                     'and count < top_k, draws one with multinomial; if that id occurs >= win_size*tau_r (=1) times '
                     'in the last win_size decoded tokens, it sets weighted_scores[id] = -inf and draws '
                     'random_sampling = softmax(weighted_scores).multinomial over the rest of the vocabulary. '
                     'The -inf line came with commit f2ddcbe (2026-02-04, "fix ras"); before it the fallback drew '
                     'from the full distribution, the repeated id included.'),
        'min_max_len': ('cosyvoice/llm/llm.py Qwen2LM.inference: min_len = int(text_len * 2), max_len = int(text_len * 20), '
                        'text_len = tokens of the target text only (prompt text excluded). inference_wrapper loops '
                        'i in range(max_len); sampling_ids(ignore_eos = i < min_len) sets logp[6561] = -inf only '
                        '(6562, 6563 stay allowed); any id in stop_token_ids = [6561, 6562, 6563] ends decoding '
                        'without being emitted, also below min_len. Since commit 0e62489 (2026-02-11, "simply code"); '
                        'before it sampling_ids re-drew up to 100 times while the id was >= 6561 (any stop token) '
                        'and raised RuntimeError after max_trials.'),
        'stop_tokens': [6561, 6562, 6563],
        'llm_input': ('[llm_embedding[0] (sos), embed_tokens(prompt_text ++ text), llm_embedding[1] (task_id), '
                      'speech_embedding(prompt speech tokens)]; the speaker embedding is not used by Qwen2LM.'),
        'silent_tokens': 'CosyVoice2Model.silent_tokens = [] (llm_job drops none for CosyVoice2).',
        'prompt_features': ('cosyvoice/cli/frontend.py: each extractor calls load_wav(path, target_sr) on the ORIGINAL file: '
                            'torchaudio.load(backend=soundfile), channel mean, torchaudio Resample(orig -> target) when '
                            'the rate differs (asserts orig >= 16000). speech tokens: 16 kHz -> whisper.log_mel_spectrogram(n_mels=128) '
                            '-> speech_tokenizer_v2.onnx; embedding: 16 kHz -> kaldi.fbank(80 bins, dither 0) minus its mean '
                            '-> campplus.onnx (file path input since commit 622a3a1, 2025-12-08, "use wav file rather than tensor"); '
                            'prompt_speech_feat: original rate resampled STRAIGHT to 24 kHz -> matcha mel '
                            '(n_fft 1920, hop 480, win 1920, fmin 0, fmax 8000, center False). Then token_len = '
                            'min(feat_frames // 2, n_tokens); feat cut to 2*token_len frames, tokens to token_len.'),
        'prompt_text': ('CosyVoice.inference_zero_shot normalizes prompt_text with text_normalize(split=False) before '
                        'frontend_zero_shot; add_zero_shot_spk (spk2info) stores the ids of the raw prompt_text.'),
        'text_normalization': ('text_normalize skips texts containing both "<|" and "|>"; with neither ttsfrd nor wetext, '
                               'Chinese (contains_chinese) gets replace_blank, replace_corner_mark, "."->"。", " - "->"，", '
                               'remove_bracket, trailing [，,、]+ -> "。", then split_paragraph(zh, token_max_n=80, '
                               'token_min_n=60, merge_len=20); English gets spell_out_number (inflect) and split_paragraph(en).'),
        'flow': ('CausalMaskedDiffWithXvec.inference(streaming=False, finalize=True): n_timesteps=10, '
                 'CausalConditionalCFM with fixed rand_noise = randn([1, 80, 15000]) after set_all_random_seed(0) '
                 'at construction, cosine t schedule, inference_cfg_rate 0.7, returns only the frames after the prompt.'),
        'hift': 'HiFTGenerator.inference(speech_feat, cache_source=zeros(1,1,0)); NSF noise drawn from torch RNG.',
    }


def torchaudio_version():
    import re
    try:
        with open(os.path.join(os.environ['TORCHAUDIO_SRC'], 'version.py')) as f:
            m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", f.read())
        return m.group(1) if m else 'unknown'
    except OSError:
        return 'unknown'


def git_log(var, path, n=6):
    out = _git(var, 'log', f'-{n}', '--format=%h %ad %s', '--date=short', 'HEAD', '--', path)
    return out.splitlines() if out else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--stage', choices=['model', 'expected', 'streamed', 'all'], default='all')
    args = ap.parse_args()
    bootstrap()
    import torch
    torch.set_num_threads(1)
    t0 = time.time()
    if args.stage in ('model', 'all'):
        build_model()
        print(f'model written in {time.time() - t0:.1f}s', flush=True)
    if args.stage in ('expected', 'all'):
        t1 = time.time()
        out = compute_expected()
        out['timing_seconds']['expected_total'] = round(time.time() - t1, 2)
        out['seeds'] = {'model': SEED, 'hift_manual_seed_before_each_vocoder_call': HIFT_SEED,
                        'yaml_seeds': 1986, 'flow_rand_noise': 'CausalConditionalCFM: set_all_random_seed(0)'}
        out['decoding'] = ('greedy: Qwen2LM.sampling replaced by argmax over CosyVoice\'s own logp '
                           '(log_softmax of llm_decoder); min_len/max_len/eos masking/stop tokens are CosyVoice\'s.')
        out['deviations'] = [
            'greedy decoding instead of ras_sampling (see decoding)',
            f'torch.manual_seed({HIFT_SEED}) right before each hift.inference',
            'no ttsfrd/wetext: CosyVoice\'s own fallback text normalization',
            'CPU, fp32; torchaudio Python parts from TORCHAUDIO_SRC with a soundfile-based torchaudio.load stub',
            'omegaconf.DictConfig stub (attribute dict) for cfm_params',
        ]
        out['upstream'] = {
            'cosyvoice_commit': git_head('COSYVOICE_SRC'),
            'matcha_commit': git_head('MATCHA_SRC'),
            'whisper_commit': git_head('WHISPER_SRC'),
            'diffusers_commit': git_head('DIFFUSERS_SRC'),
            'hyperpyyaml_commit': git_head('HYPERPYYAML_SRC'),
            'torchaudio_python_version': torchaudio_version(),
            'versions': {m: _md.version(m) for m in ['torch', 'transformers', 'tokenizers', 'onnxruntime', 'onnx',
                                                      'numpy', 'librosa', 'scipy', 'soundfile']},
            'behaviours': upstream_notes(),
            'history': {
                'cosyvoice/utils/common.py': git_log('COSYVOICE_SRC', 'cosyvoice/utils/common.py'),
                'cosyvoice/llm/llm.py': git_log('COSYVOICE_SRC', 'cosyvoice/llm/llm.py'),
                'cosyvoice/cli/frontend.py': git_log('COSYVOICE_SRC', 'cosyvoice/cli/frontend.py'),
                'cosyvoice/cli/cosyvoice.py': git_log('COSYVOICE_SRC', 'cosyvoice/cli/cosyvoice.py'),
            },
        }
        files = {}
        for base in (MODEL, PROMPTS, EXPECTED):
            for dp, _, fns in os.walk(base):
                for fn in sorted(fns):
                    p = os.path.join(dp, fn)
                    if fn == 'expected.json':
                        continue
                    files[os.path.relpath(p, ROOT)] = {'sha256': sha256(p), 'bytes': os.path.getsize(p)}
        out['files'] = dict(sorted(files.items()))
        with open(os.path.join(EXPECTED, 'expected.json'), 'w') as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write('\n')
    if args.stage in ('streamed', 'all'):
        compute_streamed()
    print(f'done in {time.time() - t0:.1f}s', flush=True)


if __name__ == '__main__':
    main()
