//! Synthetic monitor streams for the demo, the tests and the benchmark (`keta monitor-sim`):
//! ORU^R01 messages as an IHE PCD gateway sends them, MDC-coded, one per reading, with
//! scripted episodes. The values are synthetic and carry no patient.

use time::OffsetDateTime;

use crate::ack::{Msh, hl7_time};

/// What a chair's patient does over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Steady readings with small variation.
    Steady,
    /// SpO2 falls below 90 % for a while, then recovers.
    Desaturation,
    /// Blood pressure climbs into the severe range, then settles.
    Hypertension,
}

/// One set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimValues {
    pub systolic: f64,
    pub diastolic: f64,
    pub mean: f64,
    pub heart_rate: f64,
    pub spo2: f64,
    pub resp_rate: f64,
}

/// Small deterministic noise (xorshift), so runs repeat.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [-1, 1].
    pub fn sample(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 2001) as f64 / 1000.0 - 1.0
    }
}

/// The values at reading `step` (0-based) of a scenario whose episode runs from
/// `episode_start` for `episode_len` readings.
pub fn values_at(scenario: Scenario, step: u64, episode_start: u64, episode_len: u64, noise: &mut Noise) -> SimValues {
    let mut v = SimValues {
        systolic: 126.0 + 4.0 * noise.sample(),
        diastolic: 79.0 + 3.0 * noise.sample(),
        mean: 0.0,
        heart_rate: 74.0 + 5.0 * noise.sample(),
        spo2: 97.0 + noise.sample().round(),
        resp_rate: 14.0 + 2.0 * noise.sample(),
    };
    let in_episode = step >= episode_start && step < episode_start + episode_len.max(1);
    if in_episode {
        // Depth rises then falls over the episode (a triangle, 0..1..0).
        let pos = (step - episode_start) as f64 / episode_len.max(1) as f64;
        let depth = 1.0 - (2.0 * pos - 1.0).abs();
        match scenario {
            Scenario::Steady => {}
            Scenario::Desaturation => {
                v.spo2 = (97.0 - 14.0 * depth).round();
                v.resp_rate = (14.0 - 6.0 * depth).round();
            }
            Scenario::Hypertension => {
                v.systolic = 126.0 + 62.0 * depth;
                v.diastolic = 79.0 + 38.0 * depth;
                v.heart_rate = 74.0 + 20.0 * depth;
            }
        }
    }
    v.systolic = v.systolic.round();
    v.diastolic = v.diastolic.round();
    v.mean = ((v.systolic + 2.0 * v.diastolic) / 3.0).round();
    v.heart_rate = v.heart_rate.round();
    v.resp_rate = v.resp_rate.round();
    v
}

/// An ORU^R01 for one reading from the monitor at `location` (PV1-3) / `facility` (MSH-4).
pub fn oru_r01(control_id: &str, location: &str, facility: &str, at: OffsetDateTime, v: &SimValues) -> String {
    let t = hl7_time(at);
    let obx = |n: u32, code: &str, refid: &str, value: f64, unit: &str, unit_ref: &str| {
        format!("OBX|{n}|NM|{code}^{refid}^MDC|1.0.0.{n}|{value}|{unit}^{unit_ref}^MDC|||||R|||{t}\r")
    };
    let msh = Msh {
        sending_application: "KETA_SIM^0000000000000001^EUI-64",
        sending_facility: facility,
        receiving_application: "KETA",
        receiving_facility: "CLINIC",
        at,
        message_type: "ORU^R01^ORU_R01",
        control_id,
        processing_id: "P",
        version: "2.6",
        ack_types: Some(("NE", "AL")),
    }
    .segment();
    let mut m = format!(
        "{msh}\r\
PID|||SIM-{control_id}^^^SIM^MR\r\
PV1||O|{location}\r\
OBR|1|{control_id}^KETA_SIM|{control_id}^KETA_SIM|182777000^monitoring of patient^SNOMED-CT|||{t}\r"
    );
    m.push_str(&obx(1, "150021", "MDC_PRESS_BLD_NONINV_SYS", v.systolic, "266016", "MDC_DIM_MMHG"));
    m.push_str(&obx(2, "150022", "MDC_PRESS_BLD_NONINV_DIA", v.diastolic, "266016", "MDC_DIM_MMHG"));
    m.push_str(&obx(3, "150023", "MDC_PRESS_BLD_NONINV_MEAN", v.mean, "266016", "MDC_DIM_MMHG"));
    m.push_str(&obx(4, "147842", "MDC_ECG_HEART_RATE", v.heart_rate, "264864", "MDC_DIM_BEAT_PER_MIN"));
    m.push_str(&obx(5, "150456", "MDC_PULS_OXIM_SAT_O2", v.spo2, "262688", "MDC_DIM_PERCENT"));
    m.push_str(&obx(6, "151562", "MDC_RESP_RATE", v.resp_rate, "264928", "MDC_DIM_RESP_PER_MIN"));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{ObservationTable, TimeWindow, map_readings};
    use crate::message::parse_oru;
    use time::macros::datetime;

    #[test]
    fn simulated_messages_map_back_to_their_values() {
        let at = datetime!(2026-12-07 10:00 UTC);
        let mut noise = Noise::new(3);
        let v = values_at(Scenario::Steady, 0, 10, 10, &mut noise);
        let m = parse_oru(&oru_r01("SIM-1", "INFUSION^^CHAIR-3", "GW", at, &v)).unwrap();
        assert_eq!(m.location.as_deref(), Some("INFUSION^^CHAIR-3"));
        let r = map_readings(&m, ObservationTable::builtin(), time::UtcOffset::UTC, at, TimeWindow::default()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].vitals.spo2_pct.unwrap().0, v.spo2);
        assert_eq!(r[0].vitals.systolic_mmhg.unwrap().0, v.systolic);
        assert_eq!(r[0].mean_mmhg.unwrap().0, v.mean);
        assert_eq!(m.header.message_type, "ORU^R01");
        assert_eq!(m.header.control_id, "SIM-1");
    }

    #[test]
    fn episodes_reach_the_alert_ranges_and_recover() {
        let mut noise = Noise::new(1);
        let lowest =
            (0..40).map(|s| values_at(Scenario::Desaturation, s, 10, 20, &mut noise).spo2).fold(100.0, f64::min);
        assert!(lowest <= 85.0, "{lowest}");
        let highest =
            (0..40).map(|s| values_at(Scenario::Hypertension, s, 10, 20, &mut noise).systolic).fold(0.0, f64::max);
        assert!(highest >= 180.0, "{highest}");
        let after = values_at(Scenario::Desaturation, 35, 10, 20, &mut noise);
        assert!(after.spo2 >= 96.0);
    }
}
