"""Audio to attention graphs: log-mel frames are nodes.

The features are log-mel energies computed here from ``torch.stft``:

.. math::
    S_{t,f} = |\\mathrm{STFT}(w)_{t,f}|^2, \\qquad
    x_{t,m} = \\log \\max\\big(\\textstyle\\sum_f S_{t,f} M_{f,m},\\ \\text{floor}\\big)

with a Hann window, ``center=True`` and zero padding (as librosa >= 0.10), so a clip of ``T``
samples gives ``1 + T // hop_length`` frames. ``M`` is a bank of triangular filters equally
spaced on the HTK mel scale ``mel(f) = 2595 log10(1 + f / 700)``, each peaking at 1 at its
centre (plain, not Slaney area-normalised: a pure tone is loudest in the band whose centre is
nearest to it, and high bands are not damped). Silence (all zeros) is valid input and gives
``log(floor)`` everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import MAX_INDEX, all_finite, check_float, check_int
from ..patterns import Pattern, Window
from .sequence import build_data, check_pattern

__all__ = ["log_mel", "mel_filterbank", "mel_centers", "hz_to_mel", "mel_to_hz", "audio_to_graph",
           "DEFAULT_AUDIO_PATTERN", "spec_augment"]

DEFAULT_AUDIO_PATTERN = Window(left=16, right=0)
"""Streaming (truncated, causal-local) attention: each frame sees itself and the 16 before it,
160 ms of past at the default 10 ms hop."""


def hz_to_mel(f: Tensor | float) -> Tensor:
    """The HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor | float) -> Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_centers(n_mels: int, f_min: float, f_max: float) -> Tensor:
    """The centre frequencies (Hz) of the ``n_mels`` filters, float64 ``[n_mels]``."""
    check_int(n_mels, "n_mels", 1, MAX_INDEX)
    f_min = check_float(f_min, "f_min", minimum=0.0)
    f_max = check_float(f_max, "f_max", above=f_min)
    points = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                      dtype=torch.float64))
    return points[1:-1]


def mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """Triangular mel filters ``[n_freqs, n_mels]`` (float32) over the bins of a one-sided spectrum.

    Filter ``m`` rises from centre ``m - 1`` to 1 at centre ``m`` and falls to 0 at centre
    ``m + 1`` (the end points are ``f_min`` and ``f_max``), evaluated at the bin frequencies
    ``k * sample_rate / (2 (n_freqs - 1))``.
    """
    check_int(n_freqs, "n_freqs", 2, MAX_INDEX)
    f_min, f_max = _mel_range(sample_rate, n_mels, f_min, f_max)
    points = torch.cat([torch.tensor([float(f_min)], dtype=torch.float64),
                        mel_centers(n_mels, f_min, f_max),
                        torch.tensor([float(f_max)], dtype=torch.float64)])
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]  # (F, 1)
    lower, centre, upper = points[:-2], points[1:-1], points[2:]  # (M,) each
    rising = (freqs - lower) / (centre - lower)  # (F, M)
    falling = (upper - freqs) / (upper - centre)  # (F, M)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()



def _mel_range(sample_rate: object, n_mels: object, f_min: object, f_max: object) -> tuple[float, float]:
    """``(f_min, f_max)`` checked against each other and the Nyquist frequency (``f_max`` unset:
    ``sample_rate / 2``), after ``sample_rate`` and ``n_mels``."""
    check_int(sample_rate, "sample_rate", 1, MAX_INDEX)
    check_int(n_mels, "n_mels", 1, MAX_INDEX)
    nyquist = sample_rate / 2
    f_min = check_float(f_min, "f_min", minimum=0.0)
    f_max = nyquist if f_max is None else check_float(f_max, "f_max", above=f_min)
    if not 0 <= f_min < f_max <= nyquist:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}, got f_min={f_min}, f_max={f_max}")
    return f_min, f_max


def _mono(waveform: object) -> Tensor:
    if not isinstance(waveform, Tensor):
        raise TypeError(f"waveform must be a Tensor [T] or [C, T], got {type(waveform).__name__}")
    if not waveform.dtype.is_floating_point:
        raise TypeError(f"waveform must be floating point (int16 PCM: waveform.float() / 32768), got {waveform.dtype}")
    if waveform.dim() not in (1, 2):
        raise ValueError(f"waveform must have shape [T] or [C, T], got {list(waveform.shape)}")
    if waveform.size(-1) == 0 or waveform.numel() == 0:
        raise ValueError(f"waveform is empty (shape {list(waveform.shape)}); expected at least one sample")
    if not all_finite(waveform):
        raise ValueError("waveform contains NaN or infinite samples; expected finite values")
    return waveform.mean(dim=0) if waveform.dim() == 2 else waveform  # channels averaged to mono


def log_mel(waveform: Tensor, sample_rate: int, *, n_fft: int = 400, win_length: int | None = None,
            hop_length: int = 160, n_mels: int = 40, f_min: float = 0.0, f_max: float | None = None,
            floor: float = 1e-10) -> Tensor:
    """Log-mel energies of a waveform (see the module docstring for the formula).

    Args:
        waveform: ``[T]`` or ``[C, T]`` floating samples; channels are averaged to mono.
        sample_rate: samples per second.
        n_fft: FFT size (default 400: 25 ms at 16 kHz).
        win_length: Hann window length, ``<= n_fft`` (default ``n_fft``).
        hop_length: samples between frames (default 160: 10 ms at 16 kHz).
        n_mels: number of mel bands (default 40).
        f_min, f_max: the frequency range of the filters (default 0 to ``sample_rate / 2``).
        floor: the smallest energy before the log (default 1e-10, so silence is about -23.03).

    Shapes:
        output ``[1 + T // hop_length, n_mels]``, float32.

    Raises:
        TypeError: ``waveform`` is not a floating tensor.
        ValueError: empty or non-finite audio, or an invalid setting (each named).
    """
    wave = _mono(waveform)
    check_int(n_fft, "n_fft", 1, MAX_INDEX)
    check_int(hop_length, "hop_length", 1, MAX_INDEX)
    win_length = n_fft if win_length is None else check_int(win_length, "win_length", 1, MAX_INDEX)
    if win_length > n_fft:
        raise ValueError(f"win_length must be <= n_fft ({n_fft}), got {win_length}")
    f_min, f_max = _mel_range(sample_rate, n_mels, f_min, f_max)
    check_float(floor, "floor", above=0.0)
    wave = wave.float()
    spec = torch.stft(wave, n_fft, hop_length=hop_length, win_length=win_length,
                      window=torch.hann_window(win_length, device=wave.device), center=True,
                      pad_mode="constant", return_complex=True)  # (F, frames)
    power = spec.abs().pow(2).t()  # (frames, F)
    fbank = mel_filterbank(n_fft // 2 + 1, sample_rate, n_mels, f_min, f_max).to(wave.device)
    return (power @ fbank).clamp(min=floor).log()  # (frames, n_mels)


def audio_to_graph(waveform: Tensor, sample_rate: int, pattern: Pattern | None = None, y: object = None,
                   **mel_kwargs: object) -> Data:
    """A clip as an attention graph over its log-mel frames.

    Args:
        waveform: ``[T]`` or ``[C, T]`` floating samples (channels averaged to mono).
        sample_rate: samples per second.
        pattern: the attention pattern over frames (default :data:`DEFAULT_AUDIO_PATTERN`,
            ``Window(left=16, right=0)``).
        y: a label for the clip.
        **mel_kwargs: passed to :func:`log_mel` (``n_fft``, ``hop_length``, ``n_mels`` ...).

    Returns:
        ``Data`` with ``x`` ``[frames, n_mels]``, ``pos`` = frame index, ``sample_rate``,
        ``hop_length``, and the attention edges.
    """
    pattern = DEFAULT_AUDIO_PATTERN if pattern is None else check_pattern(pattern)
    feats = log_mel(waveform, sample_rate, **mel_kwargs)
    hop = mel_kwargs.get("hop_length", log_mel.__kwdefaults__["hop_length"])
    return build_data(feats, pattern, pos=torch.arange(feats.size(0), device=feats.device), y=y,
                      sample_rate=sample_rate, hop_length=hop)


def spec_augment(x: Tensor, batch: Tensor, pos: Tensor, freq_mask: int, time_mask: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment's masks (Park et al. 2019) on a batch of clips laid end to end.

    For each clip ``b`` (the rows with ``batch == b``; ``pos`` is each row's frame index in its
    clip) a width ``f`` is drawn uniformly from ``0 .. freq_mask`` and a start ``f0`` from
    ``0 .. n_mels - f``, and channels ``f0 .. f0 + f - 1`` are set to 0 in every frame of the
    clip; likewise ``t`` from ``0 .. time_mask`` (at most the clip's length) and frames
    ``t0 .. t0 + t - 1``. On features normalised to zero mean, 0 is the mean (the paper's choice).

    Shapes:
        x ``[N, n_mels]`` (not modified: a masked copy is returned), batch and pos ``[N]``.
    """
    check_int(freq_mask, "freq_mask", 0, MAX_INDEX)
    check_int(time_mask, "time_mask", 0, MAX_INDEX)
    if x.dim() != 2 or batch.shape != x.shape[:1] or pos.shape != x.shape[:1]:
        raise ValueError(f"x must be [N, n_mels] with batch and pos [N], got {list(x.shape)}, "
                         f"{list(batch.shape)}, {list(pos.shape)}")
    if freq_mask == 0 and time_mask == 0:
        return x
    clips, n_mels = int(batch.max()) + 1, x.size(1)
    lengths = torch.bincount(batch, minlength=clips)

    def band(most: Tensor | int, size: Tensor | int) -> tuple[Tensor, Tensor]:
        """Per clip a width in 0 .. min(most, size) and a start in 0 .. size - width."""
        size = torch.as_tensor(size, device=x.device).expand(clips)
        draws = torch.rand(2, clips, generator=generator).to(x.device)  # drawn on the generator's (CPU) stream
        width = (draws[0] * (torch.clamp(size, max=most) + 1)).long()
        start = (draws[1] * (size - width + 1)).long()
        return start, width

    f0, f = band(freq_mask, n_mels)
    t0, t = band(time_mask, lengths)
    channel = torch.arange(n_mels, device=x.device)[None, :]  # (1, n_mels)
    frequency = (channel >= f0[batch, None]) & (channel < (f0 + f)[batch, None])  # (N, n_mels)
    frames = ((pos >= t0[batch]) & (pos < (t0 + t)[batch]))[:, None]  # (N, 1)
    return x.masked_fill(frequency | frames, 0.0)
