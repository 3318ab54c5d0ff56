"""The ``audio`` processor: tempo, key, loudness and timbre of music tracks, with essentia.

Each track is decoded once with PyAV into two buffers: the track's own channels at its native
sample rate (for the EBU R128 meter) and one mono 44.1 kHz signal (for everything else).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediamill.processors.base import ItemRef, Processor, Skip, Work

if TYPE_CHECKING:
    import av
    import numpy as np
    from numpy.typing import NDArray

ANALYSIS_RATE = 44100
#: the ReplayGain 2.0 reference level: gain = REPLAYGAIN_REFERENCE_LUFS - integrated loudness
REPLAYGAIN_REFERENCE_LUFS = -18.0
RHYTHM_METHODS = ("degara", "multifeature")
#: EBU R128's absolute gate: a track no louder than this is silence, with nothing to analyse
SILENCE_LUFS = -70.0
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_SHARPS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}
_FRAME_SIZE = 2048
_HOP_SIZE = 2048  # non-overlapping: the means are the same, at half the cost
#: rates essentia's EBU R128 meter measures right; it reads 96 kHz as silence (-70 LUFS) and
#: 176.4 kHz as +12 to +50 LUFS, so other rates are metered after resampling to 48 kHz
_METER_RATES = frozenset({44100, 48000})
#: the multifeature beat tracker's confidence tops out here (essentia's documentation)
_MULTIFEATURE_MAX_CONFIDENCE = 5.32
#: seconds of buffer first reserved for a track whose container gives no duration
_UNKNOWN_DURATION = 600


def pin_threads() -> None:
    """Limit BLAS/OpenMP pools to one thread: each worker process is already one core.

    The variables only take effect if set before numpy/essentia are first imported in the
    process, so process executors should also put them in the child's environment.
    """
    for name in _THREAD_VARS:
        os.environ[name] = "1"


def sharp_key(key: str) -> str:
    """Spell a tonic with sharps: ``Eb`` -> ``D#``, ``Bb`` -> ``A#``; sharps pass through."""
    return _SHARPS.get(key, key)


@dataclass(slots=True)
class DecodedAudio:
    """One decode of a track: native-rate stereo, mono 44.1 kHz, and timing facts."""

    stereo: NDArray[np.float32]  # (n, 2) at ``sample_rate``; a mono file has a silent right
    mono: NDArray[np.float32]  # (m,) at ANALYSIS_RATE
    sample_rate: int
    channels: int
    duration: float  # of the whole track
    analysed_seconds: float
    damaged_packets: int = 0  # skipped because the decoder refused them


def decode(path: str, max_seconds: float) -> DecodedAudio:
    """Decode at most ``max_seconds`` of the first audio stream of ``path`` (its middle part).

    Raises ``ValueError`` with the decoder's cause when the file cannot be decoded.
    """
    import av
    import numpy as np

    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ValueError(f"cannot decode audio: {exc.strerror or exc}") from exc
    with container:
        if not container.streams.audio:
            raise ValueError("cannot decode audio: the file has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        channels = stream.channels
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
        start = 0.0
        if duration > max_seconds and stream.time_base is not None:
            start = (duration - max_seconds) / 2
            container.seek(int(start / stream.time_base), stream=stream)
        limit = int(max_seconds * rate)
        # A mono file stays one channel: EBU R128 measures it as one channel, not as two
        # equal ones. Most decoders give float planar frames of the stream's channels, copied
        # as they are; others (integer samples, more than two channels) go through a converter.
        width = 1 if channels == 1 else 2
        converter = av.AudioResampler(format="fltp", layout="mono" if width == 1 else "stereo")
        # One buffer sized from the container's duration and filled frame by frame, the way
        # the meter wants it: per-frame arrays joined and transposed at the end cost 50 % more
        # CPU (87 against 57 ms for a 30 s track). Unused capacity is never touched, so costs
        # no memory; a duration short of the truth makes the buffer grow.
        expected = int(duration * rate) + rate if duration else _UNKNOWN_DURATION * rate
        buffer = _Interleaved(np.empty((min(limit, expected), 2), dtype=np.float32))
        damage = _Damage()
        for frame in _frames(container, stream, damage):
            if start and frame.time is not None and frame.time + frame.samples / rate < start:
                continue  # seeking lands on the packet before the excerpt
            if frame.format.name == "fltp" and frame.layout.nb_channels == width:
                buffer.append(frame)
            else:
                for out in converter.resample(frame):
                    buffer.append(out)
            if buffer.count >= limit:
                break
        for out in converter.resample(None):
            buffer.append(out)
    wanted = min(duration, max_seconds) if duration else 0.0
    damage.check(min(buffer.count, limit) / rate, wanted)
    stereo = buffer.samples[: min(buffer.count, limit)]
    if width == 1:
        stereo[:, 1] = 0  # a mono file: silent right
        mono = stereo[:, 0].copy()
    else:
        mono = (stereo[:, 0] + stereo[:, 1]) / np.float32(2)
    length = stereo.shape[0]
    return DecodedAudio(
        stereo=stereo,
        mono=_resample(mono, rate),
        sample_rate=rate,
        channels=channels,
        duration=max(duration, length / rate),
        analysed_seconds=length / rate,
        damaged_packets=damage.packets,
    )


#: a damaged track is analysed when at least this share of the wanted seconds decoded
MIN_DECODED_SHARE = 0.5


@dataclass(slots=True)
class _Damage:
    """Packets the decoder refused (skipped, as ffmpeg does), and why the first one was."""

    packets: int = 0
    cause: str = ""
    #: the demuxer stopped early (truncated or unreadable past this point)
    cut: str = ""

    def check(self, decoded: float, wanted: float) -> None:
        """Fail when too little of the ``wanted`` seconds was decoded to analyse the rest."""
        if decoded and decoded >= MIN_DECODED_SHARE * wanted:
            return
        causes = [c for c in (self.cause, self.cut) if c]
        if not decoded and not causes:
            raise ValueError("cannot decode audio: no audio samples in the stream")
        why = "; ".join(causes) or "no audio samples in the stream"
        plural = "s" if self.packets > 1 else ""
        skipped = f", {self.packets} damaged packet{plural} skipped" if self.packets else ""
        raise ValueError(
            f"cannot decode audio: {why} (only {decoded:.2f} s of {wanted:.2f} s decoded{skipped})"
        )


def _frames(container: Any, stream: Any, damage: _Damage) -> Iterator[av.AudioFrame]:
    """The stream's frames, packet by packet: a packet the decoder refuses is skipped and
    counted (ffmpeg does the same and decodes the rest), and a demuxer error ends the track
    where it happens, keeping what came before."""
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            damage.cut = f"reading stopped early: {exc.strerror or exc}"
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            damage.packets += 1
            damage.cause = damage.cause or str(exc.strerror or exc)
            continue
        yield from frames


class _Interleaved:
    """A growing ``(n, 2)`` float32 buffer filled from float planar frames of 1 or 2 channels."""

    def __init__(self, samples: NDArray[np.float32]) -> None:
        self.samples = samples
        self.count = 0

    def append(self, frame: av.AudioFrame) -> None:
        import numpy as np

        n = frame.samples
        end = self.count + n
        if end > self.samples.shape[0]:  # the container's duration was short of the truth
            bigger = np.empty((max(end, 2 * self.samples.shape[0]), 2), dtype=np.float32)
            bigger[: self.count] = self.samples[: self.count]
            self.samples = bigger
        for channel, plane in enumerate(frame.planes):
            # memoryview: PyAV's stubs do not tell numpy that a plane is a buffer
            values = np.frombuffer(memoryview(plane), dtype=np.float32, count=n)
            self.samples[self.count : end, channel] = values
        self.count = end


def _resample_stereo(stereo: NDArray[np.float32], rate: int, to: int) -> NDArray[np.float32]:
    """``(n, 2)`` samples at ``rate`` as ``(m, 2)`` at ``to``, with FFmpeg's resampler."""
    import av
    import numpy as np

    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(stereo).reshape(1, -1), format="flt", layout="stereo"
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=to)
    out = [f.to_ndarray().reshape(-1, 2) for f in resampler.resample(frame)]
    out.extend(f.to_ndarray().reshape(-1, 2) for f in resampler.resample(None))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.float32)


def _resample(mono: NDArray[np.float32], rate: int) -> NDArray[np.float32]:
    """``mono`` at ANALYSIS_RATE, with FFmpeg's resampler in one call over the whole buffer."""
    import av
    import numpy as np

    if rate == ANALYSIS_RATE:
        return mono
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=ANALYSIS_RATE)
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def read_tags(path: str) -> dict[str, str | None]:
    """Artist, title and album from the file's tags (mutagen, no decoding); missing -> None."""
    import mutagen

    tags: dict[str, str | None] = {"artist": None, "title": None, "album": None}
    try:
        found = mutagen.File(path, easy=True)
    except (mutagen.MutagenError, OSError, ValueError):
        return tags  # unreadable tags never fail the analysis: the audio is what counts
    if found is None or found.tags is None:
        return tags
    for name in tags:
        values = found.tags.get(name)
        if values:
            tags[name] = str(values[0])
    return tags


class AudioProcessor(Processor):
    """Tempo, key, loudness and timbre descriptors of a music track.

    Options:

    * ``rhythm``: ``"degara"`` (default, fast) or ``"multifeature"`` (slower, more accurate);
    * ``max_seconds``: analyse at most this many seconds, taken from the middle of longer
      tracks (default 600: whole tracks up to ten minutes); ``duration`` is still the whole
      track's, ``analysed_seconds`` says how much was used;
    * ``key_profile``: essentia's key profile (default ``"bgate"``);
    * ``model_path``: an optional essentia TensorFlow graph (Discogs-EffNet style) whose mean
      embedding is stored as ``embedding``; needs an essentia build with TensorFlow.

    ``data`` holds ``bpm``, ``bpm_confidence`` (0-1: the multifeature tracker's confidence
    divided by its 5.32 maximum, or for degara, which has no confidence, the share of beat
    intervals within 5 % of the median one), ``beats_count``, ``key`` (sharps), ``scale``,
    ``key_strength``, ``loudness`` (integrated LUFS, EBU R128, over the track's own channels and
    rate), ``loudness_range`` (LU), ``replaygain_db`` (ReplayGain 2.0: -18 LUFS minus
    ``loudness``), ``energy`` (RMS level of the mono signal, 0-1 full scale), ``danceability``
    (0-~3), ``dynamic_complexity``, ``spectral_centroid`` (Hz), ``zero_crossing_rate``,
    ``mfcc`` (13 mean coefficients), ``duration``, ``analysed_seconds``, ``damaged_packets``
    (packets the decoder refused and skipped, as ffmpeg does; a track fails only when less
    than half of what was wanted decodes), ``sample_rate``,
    ``channels``, ``rhythm_method`` and ``tags`` (artist, title, album). A value that is not
    finite is stored as ``None``. A silent track (at or below -70 LUFS) is skipped. Memory per
    worker is about 12 bytes per analysed sample: some 300 MB for a ten-minute excerpt.
    """

    name = "audio"
    version = "2"  # 2: tracks at rates other than 44.1/48 kHz metered at 48 kHz
    work = Work.CPU
    option_names = frozenset({"key_profile", "max_seconds", "model_output", "model_path", "rhythm"})
    kinds = frozenset({"audio"})
    # about a second a track: one track at a time keeps both workers evenly busy
    batch_size = 1
    result_options = ("rhythm", "max_seconds", "key_profile", "model_path", "model_output")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.rhythm = str(self.options.get("rhythm", "degara"))
        if self.rhythm not in RHYTHM_METHODS:
            raise ValueError(
                f"rhythm must be one of {', '.join(RHYTHM_METHODS)}, not {self.rhythm!r}"
            )
        max_seconds = self.options.get("max_seconds", 600)
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float):
            raise ValueError(f"max_seconds must be a positive number, not {max_seconds!r}")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be a positive number, not {max_seconds!r}")
        self.max_seconds = float(max_seconds)
        self.key_profile = str(self.options.get("key_profile", "bgate"))
        self._algorithms: dict[str, Any] = {}
        self._meters: dict[int, Any] = {}
        self._model: Any = None

    def setup(self) -> None:
        """Build the essentia algorithms once per worker, and the optional model."""
        pin_threads()
        import essentia

        # before essentia.standard: importing it logs "[ INFO ] MusicExtractorSVM: no
        # classifier models…" once per worker otherwise
        essentia.log.infoActive = False
        import essentia.standard as es

        self._algorithms = {
            "rhythm": es.RhythmExtractor2013(method=self.rhythm),
            "key": es.KeyExtractor(profileType=self.key_profile),
            "danceability": es.Danceability(sampleRate=ANALYSIS_RATE),
            "dynamic_complexity": es.DynamicComplexity(sampleRate=ANALYSIS_RATE),
            "zcr": es.ZeroCrossingRate(),
            "window": es.Windowing(type="hann", size=_FRAME_SIZE),
            "spectrum": es.Spectrum(size=_FRAME_SIZE),
            "mfcc": es.MFCC(inputSize=_FRAME_SIZE // 2 + 1, sampleRate=ANALYSIS_RATE),
            "centroid": es.Centroid(range=ANALYSIS_RATE / 2),
        }
        model_path = self.options.get("model_path")
        if model_path:
            self._model = self._load_model(str(model_path))

    def _load_model(self, model_path: str) -> Any:
        import essentia.standard as es

        predictor = getattr(es, "TensorflowPredictEffnetDiscogs", None)
        if predictor is None:
            raise RuntimeError(
                "option model_path is set but this essentia build has no TensorFlow support "
                "(essentia.standard.TensorflowPredictEffnetDiscogs is missing); install "
                "essentia-tensorflow or drop model_path"
            )
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"model_path {model_path!r} is not a file")
        self._algorithms["resample16k"] = es.Resample(
            inputSampleRate=ANALYSIS_RATE, outputSampleRate=16000
        )
        output = str(self.options.get("model_output", "PartitionedCall:1"))
        return predictor(graphFilename=model_path, output=output)

    def _meter(self, sample_rate: int) -> Any:
        meter = self._meters.get(sample_rate)
        if meter is None:
            import essentia.standard as es

            meter = es.LoudnessEBUR128(sampleRate=float(sample_rate))
            self._meters[sample_rate] = meter
        return meter

    def process(self, item: ItemRef) -> dict[str, Any]:
        if item.abspath is None:
            raise ValueError(f"{item.path} is not a file")
        if not self._algorithms:
            raise RuntimeError("AudioProcessor.setup() must run before process()")
        audio = decode(item.abspath, self.max_seconds)
        data = self.analyse(audio)
        data["tags"] = read_tags(item.abspath)
        return data

    def analyse(self, audio: DecodedAudio) -> dict[str, Any]:
        """Every descriptor of one decoded track (no tags); see the class docstring."""
        import numpy as np

        algo = self._algorithms
        mono = audio.mono
        if mono.shape[0] < _FRAME_SIZE * 4:
            raise ValueError(f"too short to analyse ({audio.analysed_seconds:.2f} s of audio)")

        stereo, meter_rate = audio.stereo, audio.sample_rate
        if meter_rate not in _METER_RATES:
            stereo, meter_rate = _resample_stereo(stereo, meter_rate, 48000), 48000
        _, _, integrated, loudness_range = self._meter(meter_rate)(stereo)
        if integrated <= SILENCE_LUFS:
            raise Skip(f"silent: integrated loudness at or below {SILENCE_LUFS:g} LUFS")

        bpm, ticks, confidence, _, intervals = algo["rhythm"](mono)
        if self.rhythm == "multifeature":
            bpm_confidence = min(1.0, float(confidence) / _MULTIFEATURE_MAX_CONFIDENCE)
        elif len(intervals) and bpm > 0:
            spread = np.abs(np.asarray(intervals) / np.median(intervals) - 1)
            bpm_confidence = float(np.mean(spread <= 0.05))
        else:
            bpm_confidence = 0.0

        key, scale, key_strength = algo["key"](mono)
        danceability, _ = algo["danceability"](mono)
        dynamic_complexity, _ = algo["dynamic_complexity"](mono)

        window, spectrum = algo["window"], algo["spectrum"]
        mfcc_algo, centroid_algo = algo["mfcc"], algo["centroid"]
        usable = (mono.shape[0] - _FRAME_SIZE) // _HOP_SIZE + 1
        mfccs = np.empty((usable, 13), dtype=np.float32)
        centroids = np.empty(usable, dtype=np.float32)
        for i in range(usable):
            frame = mono[i * _HOP_SIZE : i * _HOP_SIZE + _FRAME_SIZE]
            spec = spectrum(window(frame))
            mfccs[i] = mfcc_algo(spec)[1]
            centroids[i] = centroid_algo(spec)

        data: dict[str, Any] = {
            "bpm": _r(bpm),
            "bpm_confidence": _r(bpm_confidence),
            "beats_count": len(ticks),
            "rhythm_method": self.rhythm,
            "key": sharp_key(str(key)),
            "scale": str(scale),
            "key_strength": _r(key_strength),
            "loudness": _r(integrated),
            "loudness_range": _r(loudness_range),
            "replaygain_db": _r(REPLAYGAIN_REFERENCE_LUFS - float(integrated)),
            "energy": _r(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))),
            "danceability": _r(danceability),
            "dynamic_complexity": _r(dynamic_complexity),
            "spectral_centroid": _r(np.mean(centroids, dtype=np.float64)),
            "zero_crossing_rate": _r(algo["zcr"](mono)),
            "mfcc": [_r(v) for v in mfccs.mean(axis=0, dtype=np.float64)],
            "duration": _r(audio.duration),
            "analysed_seconds": _r(audio.analysed_seconds),
            "damaged_packets": audio.damaged_packets,
            "sample_rate": audio.sample_rate,
            "channels": audio.channels,
        }
        if self._model is not None:
            embeddings = self._model(algo["resample16k"](mono))
            data["embedding"] = [_r(v) for v in np.mean(embeddings, axis=0).tolist()]
        return data

    def teardown(self) -> None:
        self._algorithms = {}
        self._meters = {}
        self._model = None


def _r(value: Any) -> float | None:
    """A plain float rounded to 4 decimals (JSON-able, no float32 noise); NaN/inf -> None."""
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None
