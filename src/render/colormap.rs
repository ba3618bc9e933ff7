//! Colour maps for heatmaps, from the `colorous` crate (d3's scales).

use crate::error::{Error, Message, Result};

/// A colour map by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Colormap {
    /// Google's Turbo: a perceptually smoother jet (the default).
    #[default]
    Turbo,
    /// Viridis.
    Viridis,
    /// Inferno.
    Inferno,
    /// Magma.
    Magma,
    /// Greys (black to white).
    Greys,
}

impl Colormap {
    /// Every name accepted by [`Colormap::parse`].
    pub const NAMES: [&'static str; 5] = ["turbo", "viridis", "inferno", "magma", "greys"];

    /// Parses a colour map name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "turbo" => Ok(Self::Turbo),
            "viridis" => Ok(Self::Viridis),
            "inferno" => Ok(Self::Inferno),
            "magma" => Ok(Self::Magma),
            "greys" => Ok(Self::Greys),
            _ => Err(Error::InvalidOption(Message::from(format!(
                "unknown colormap `{s}` ({})",
                Self::NAMES.join(", ")
            )))),
        }
    }

    /// RGB for `t` in `[0, 1]`.
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let g = match self {
            Self::Turbo => colorous::TURBO,
            Self::Viridis => colorous::VIRIDIS,
            Self::Inferno => colorous::INFERNO,
            Self::Magma => colorous::MAGMA,
            Self::Greys => return [(t.clamp(0.0, 1.0) * 255.0).round() as u8; 3],
        };
        g.eval_continuous(f64::from(t.clamp(0.0, 1.0))).as_array()
    }
}
