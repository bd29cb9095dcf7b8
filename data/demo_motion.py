"""Smile dynamics of the demo dataset: class-conditional latents, time courses, Bayes ceiling.

The class-informative latents of one video (after Dibeklioglu et al. 2012/2015, Schmidt et al.):

=============  =========================================================  ======================
latent         meaning                                                    posed vs spontaneous
=============  =========================================================  ======================
onset_s        rise time of the lip corners (s)                           shorter
apex_s         time at the top (s)                                        shorter
offset_s       decay time (s)                                             shorter
lip_amplitude  gain of the measured smile field (1 = the measured smile)  larger
asymmetry      signed left/right gain difference (left = a(1+asym))       larger spread
eye_ratio      Duchenne (cheek raise, eyelid narrowing) gain / lip gain   weaker
eye_delay_s    lag of the Duchenne time course behind the lips (s)        later
=============  =========================================================  ======================

The eye ratio is logit-normal (bounded by ``eye_ratio_max``), the others log-normal or normal.
Log-durations are jointly normal with a per-subject speed offset shared by a subject's videos
(covariance ``sd_video^2 I + sd_subject^2 J``); lip amplitude has a per-subject offset too. Given
the class, the blocks are independent Gaussians (on log or linear scale), so the exact posterior
of the class given the latents is available in closed form and the Bayes ceiling (accuracy of the
optimal classifier that sees the latents) is its Monte-Carlo expectation. Landmarks are a noisy
view of the latents, so no classifier of landmarks can beat it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

LATENTS = (
    "onset_s",
    "apex_s",
    "offset_s",
    "lip_amplitude",
    "asymmetry",
    "eye_ratio",
    "eye_delay_s",
)


@dataclass(frozen=True)
class ClassParams:
    """Class-conditional distribution of the informative latents (medians in seconds / gains)."""

    onset_s: float
    apex_s: float
    offset_s: float
    lip_amplitude: float
    asymmetry_sd: float
    eye_ratio: float
    eye_delay_s: float


@dataclass(frozen=True)
class MotionParams:
    """Both classes plus the shared spreads; defaults put the Bayes ceiling near 90%."""

    posed: ClassParams = field(
        default_factory=lambda: ClassParams(
            onset_s=0.42,
            apex_s=0.9,
            offset_s=0.5,
            lip_amplitude=0.8,
            asymmetry_sd=0.13,
            eye_ratio=0.3,
            eye_delay_s=0.22,
        )
    )
    spontaneous: ClassParams = field(
        default_factory=lambda: ClassParams(
            onset_s=0.65,
            apex_s=1.5,
            offset_s=0.85,
            lip_amplitude=0.63,
            asymmetry_sd=0.06,
            eye_ratio=1.0,
            eye_delay_s=0.04,
        )
    )
    log_duration_sd: float = 0.42  # per video, on each log-duration
    log_duration_subject_sd: float = 0.2  # per subject, shared by the three durations
    log_amplitude_sd: float = 0.25
    log_amplitude_subject_sd: float = 0.12
    eye_ratio_max: float = 1.8  # eye_ratio = max * sigmoid(normal): bounded Duchenne gain
    logit_eye_ratio_sd: float = 1.5
    eye_delay_sd: float = 0.18

    def of(self, label: int) -> ClassParams:
        """Parameters of class ``label`` (1 spontaneous, 0 posed)."""
        return self.spontaneous if label == 1 else self.posed

    def to_dict(self) -> dict:
        return asdict(self)


def _class_table(p: MotionParams, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row class parameters: field name -> (N,) array."""
    spont, posed = asdict(p.spontaneous), asdict(p.posed)
    return {k: np.where(labels == 1, spont[k], posed[k]).astype(np.float64) for k in posed}


def sample_latents(
    rng: np.random.Generator,
    p: MotionParams,
    labels: np.ndarray,
    log_speed: np.ndarray | float = 0.0,
    log_amplitude: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Informative latents (N, 7) in :data:`LATENTS` order for class labels (N,).

    ``log_speed`` / ``log_amplitude``: the per-subject offsets of each row's subject, drawn with
    :func:`sample_subject`.
    """
    labels = np.asarray(labels)
    n = len(labels)
    c = _class_table(p, labels)
    med = np.log(np.stack([c["onset_s"], c["apex_s"], c["offset_s"]], axis=1))
    durations = np.exp(
        med
        + np.asarray(log_speed)[..., None] * np.ones((n, 1))
        + rng.normal(0, p.log_duration_sd, (n, 3))
    )
    amp = c["lip_amplitude"] * np.exp(log_amplitude + rng.normal(0, p.log_amplitude_sd, n))
    asym = rng.normal(0, 1, n) * c["asymmetry_sd"]
    eye = p.eye_ratio_max * _sigmoid(
        _logit(c["eye_ratio"] / p.eye_ratio_max) + rng.normal(0, p.logit_eye_ratio_sd, n)
    )
    delay = c["eye_delay_s"] + rng.normal(0, p.eye_delay_sd, n)
    return np.column_stack([durations, amp, asym, eye, delay])


def sample_subject(
    rng: np.random.Generator, p: MotionParams, n: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject offsets (n,) each: log speed (shared by the durations) and log amplitude."""
    return rng.normal(0, p.log_duration_subject_sd, n), rng.normal(0, p.log_amplitude_subject_sd, n)


def _logit(x):
    return np.log(x) - np.log1p(-x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _log_normal_pdf(x: np.ndarray, mean, sd) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


#: The independent blocks of the class likelihood (the three durations share a subject offset).
CUES = ("durations", "lip_amplitude", "asymmetry", "eye_ratio", "eye_delay_s")


def cue_log_likelihoods(latents: np.ndarray, p: MotionParams, label: int) -> dict[str, np.ndarray]:
    """log p(cue | class) of each of :data:`CUES`, up to class-independent constants.
    latents (N, 7) -> {cue: (N,)}; their sum is the class log-likelihood."""
    c = p.of(label)
    logd = np.log(latents[:, :3]) - np.log([c.onset_s, c.apex_s, c.offset_s])
    cov = p.log_duration_sd**2 * np.eye(3) + p.log_duration_subject_sd**2 * np.ones((3, 3))
    amp_sd = np.hypot(p.log_amplitude_sd, p.log_amplitude_subject_sd)
    return {
        "durations": -0.5 * np.einsum("nd,de,ne->n", logd, np.linalg.inv(cov), logd),
        "lip_amplitude": _log_normal_pdf(np.log(latents[:, 3]), np.log(c.lip_amplitude), amp_sd),
        "asymmetry": _log_normal_pdf(latents[:, 4], 0.0, c.asymmetry_sd),
        "eye_ratio": _log_normal_pdf(
            _logit(latents[:, 5] / p.eye_ratio_max),
            _logit(c.eye_ratio / p.eye_ratio_max),
            p.logit_eye_ratio_sd,
        ),
        "eye_delay_s": _log_normal_pdf(latents[:, 6], c.eye_delay_s, p.eye_delay_sd),
    }


def cue_log_ratios(latents: np.ndarray, p: MotionParams) -> dict[str, np.ndarray]:
    """Each cue's share of the exact log posterior odds of spontaneous: {cue: (N,)}."""
    spont, posed = cue_log_likelihoods(latents, p, 1), cue_log_likelihoods(latents, p, 0)
    return {k: spont[k] - posed[k] for k in CUES}


def sufficient_statistics(latents: np.ndarray, p: MotionParams) -> np.ndarray:
    """(N, 7) features in which the exact log posterior odds are affine: the three log durations,
    log lip amplitude, asymmetry squared (its spread differs by class, its mean does not), logit of
    the bounded eye ratio, eye delay. A logistic regression on them is the well-specified learner
    of the generator: with enough data it is the Bayes rule. latents (N, 7) in LATENTS order."""
    return np.column_stack(
        [
            np.log(latents[:, :4]),
            latents[:, 4] ** 2,
            _logit(latents[:, 5] / p.eye_ratio_max),
            latents[:, 6],
        ]
    )


def class_log_likelihood(latents: np.ndarray, p: MotionParams, label: int) -> np.ndarray:
    """log p(latents | class) up to a class-independent constant; latents (N, 7) -> (N,)."""
    return sum(cue_log_likelihoods(latents, p, label).values())


def posterior_spontaneous(latents: np.ndarray, p: MotionParams, prior: float = 0.5) -> np.ndarray:
    """Exact P(spontaneous | latents), (N,), for latents (N, 7) in :data:`LATENTS` order."""
    logit = (
        class_log_likelihood(latents, p, 1)
        - class_log_likelihood(latents, p, 0)
        + np.log(prior / (1 - prior))
    )
    return 1 / (1 + np.exp(-np.clip(logit, -50, 50)))


def bayes_ceiling(
    p: MotionParams, rng: np.random.Generator, n: int = 200_000, prior: float = 0.5
) -> float:
    """Accuracy of the optimal classifier on the latents: E[max_c P(c | latents)], Monte Carlo."""
    labels = (rng.random(n) < prior).astype(int)
    rows = sample_latents(rng, p, labels, *sample_subject(rng, p, n))
    post = posterior_spontaneous(rows, p, prior)
    return float(np.maximum(post, 1 - post).mean())


def phase_curve(
    t: np.ndarray, start: float, onset: float, apex: float, offset: float
) -> np.ndarray:
    """Smile intensity in [0, 1] at times ``t`` (s): raised-cosine rise, plateau, cosine decay."""
    rise = np.clip((t - start) / onset, 0, 1)
    fall = np.clip((t - start - onset - apex) / offset, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * rise) - (0.5 - 0.5 * np.cos(np.pi * fall))
