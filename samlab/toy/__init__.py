"""The NumPy world: exact 2D landscapes and the SAM family, vectorized (docs/toy.md).

>>> from samlab import toy
>>> saddle = toy.BoundedSaddle()
>>> traj = toy.run(saddle, ["gd", "usam"], lr=0.1, rho=1.5, x0=[1.0, 0.05], steps=300)
>>> traj.outcome.tolist()
['converged', 'trapped']
"""

from ..methods import EPS, METHODS, Method, get_method
from . import theory
from .landscapes import (
    BoundedSaddle,
    ConvexQuadratic,
    CriticalPoint,
    Hyperbola,
    Landscape,
    SaddleQuadratic,
    SharpFlatValley,
    TiltedValley,
)
from .outcomes import OUTCOMES
from .simulate import PhaseDiagram, Trajectory, phase_diagram, run

__all__ = [
    "EPS", "METHODS", "OUTCOMES", "BoundedSaddle", "ConvexQuadratic", "CriticalPoint",
    "Hyperbola", "Landscape", "Method", "PhaseDiagram", "SaddleQuadratic", "SharpFlatValley",
    "TiltedValley", "Trajectory", "get_method", "phase_diagram", "run", "theory",
]
