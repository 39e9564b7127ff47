//! The five phases as data: what the host indexes, checks and reports per
//! phase is a [`PerPhase`] table indexed by [`Phase`], not five fields.

use std::ops::{Index, IndexMut};

/// A point in a request where plugins run; each is a WIT interface that a
/// plugin exports only if it implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Prime,
    Prepare,
    Present,
    Package,
    Post,
}

impl Phase {
    /// In the order a request meets them.
    pub const ALL: [Phase; 5] = [
        Phase::Prime,
        Phase::Prepare,
        Phase::Present,
        Phase::Package,
        Phase::Post,
    ];

    /// The phase's name, which is also its WIT interface's.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Prime => "prime",
            Phase::Prepare => "prepare",
            Phase::Present => "present",
            Phase::Package => "package",
            Phase::Post => "post",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;

    /// A phase by its name, as the command line writes it.
    fn from_str(name: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == name.trim())
            .ok_or_else(|| {
                format!(
                    "`{}` is not a phase; the phases are prime, prepare, present, package and post",
                    name.trim()
                )
            })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One `T` for each phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerPhase<T>([T; 5]);

impl<T> PerPhase<T> {
    pub fn from_fn(mut f: impl FnMut(Phase) -> T) -> PerPhase<T> {
        PerPhase(Phase::ALL.map(&mut f))
    }
}

impl<T> Index<Phase> for PerPhase<T> {
    type Output = T;
    fn index(&self, phase: Phase) -> &T {
        &self.0[phase as usize]
    }
}

impl<T> IndexMut<Phase> for PerPhase<T> {
    fn index_mut(&mut self, phase: Phase) -> &mut T {
        &mut self.0[phase as usize]
    }
}

/// The phases a component exports.
pub type Phases = PerPhase<bool>;

impl Phases {
    /// The exported phases' names, in request order.
    pub fn names(&self) -> Vec<&'static str> {
        Phase::ALL
            .into_iter()
            .filter(|&p| self[p])
            .map(Phase::name)
            .collect()
    }

    pub fn any(&self) -> bool {
        self.0.iter().any(|&on| on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_per_phase() {
        let mut t: PerPhase<Vec<usize>> = PerPhase::default();
        t[Phase::Present].push(3);
        assert_eq!(t[Phase::Present], vec![3]);
        assert!(t[Phase::Prime].is_empty());
        let exported = Phases::from_fn(|p| matches!(p, Phase::Present | Phase::Post));
        assert_eq!(exported.names(), ["present", "post"]);
        assert!(exported.any());
        assert!(!Phases::default().any());
        assert_eq!(Phase::Package.to_string(), "package");
        assert_eq!(" post".parse::<Phase>(), Ok(Phase::Post));
        assert!("Prime"
            .parse::<Phase>()
            .unwrap_err()
            .contains("`Prime` is not a phase"));
    }
}
