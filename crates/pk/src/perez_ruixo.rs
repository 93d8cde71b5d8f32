//! The structure of Perez-Ruixo 2021 (esketamine nasal spray, pk-reference §1.4).
//!
//! Esketamine: central, two peripheral compartments and a hepato-portal (liver)
//! compartment exchanging with central at hepatic blood flow Qh; the liver eliminates
//! (kel) and forms noresketamine (kmet). Noresketamine: central and one peripheral
//! compartment, apparent (/F) parameters carried in esketamine mass.
//!
//! Routes: a nasal device's absorbed fraction goes first-order (ka_n) into central; the
//! swallowed rest, × Fgut, enters a gut depot zero-order over Dsw and empties first-order
//! (ka_sw) into the liver, which is where first pass happens. An oral solution goes the
//! same way (Dpo, ka_po). IV goes into central. The paper's printed ODEs for A1 and A2
//! have typos; this follows the nlmixr2lib encoding, which reproduces the published
//! bioavailability formulas (pk-reference §1.4).
//!
//! The liver makes the rate matrix non-mammillary, so this model is solved with the
//! matrix exponential (`linear.rs`).

use crate::error::{PkError, invalid};
use crate::individual::{Engine, Individual, RoutePlan, RouteTable};
use crate::linear::LinearSystem;
use crate::model::ParamSet;
use crate::options::{AbsorptionRoute, Ancestry};

pub(crate) fn build(
    p: &ParamSet<'_>,
    age_years: f64,
    ancestry: Ancestry,
    ke0: Option<f64>,
) -> Result<Individual, PkError> {
    let asian = matches!(ancestry, Ancestry::AsianNotJapanese | Ancestry::Japanese);
    let japanese = matches!(ancestry, Ancestry::Japanese);

    // FRn: logit-normal per device, × 1.34 for Japanese subjects; a fraction cannot
    // pass 1, which the product can for a high deviation.
    let frn = (p.value("frn")? * if japanese { p.typical("japanese_on_frn")? } else { 1.0 }).min(1.0);
    let frn_later = (frn * p.typical("frn_later_device_factor")?).min(1.0);

    let years_over = (age_years - p.typical("age_on_qh_threshold")?).max(0.0);
    let qh = (p.typical("qh")? - p.typical("age_on_qh")? * years_over) * p.eta_factor("qh");
    if qh <= 0.0 {
        return Err(invalid(format!("age {age_years} leaves no hepatic blood flow in Perez-Ruixo's age model")));
    }
    let vc = p.value("vc")?;
    let vh = p.value("vh")?;
    let kel = p.value("kel")? * if asian { p.typical("asian_on_kel")? } else { 1.0 };
    let kmet = p.value("kmet")?;
    let vcn = p.value("vcn")?;
    let cln = p.value("cln")? * if asian { p.typical("asian_on_cln")? } else { 1.0 };

    let mut s = LinearSystem::new();
    let central = s.compartment("esketamine central");
    let p1 = s.compartment("esketamine peripheral 1");
    let p2 = s.compartment("esketamine peripheral 2");
    let liver = s.compartment("hepato-portal");
    let nasal = s.compartment("nasal cavity");
    let gut_swallowed = s.compartment("gut (swallowed spray)");
    let gut_oral = s.compartment("gut (oral solution)");
    let nor_central = s.compartment("noresketamine central");
    let nor_peripheral = s.compartment("noresketamine peripheral");

    let (q1, vp1) = (p.value("q1")?, p.value("vp1")?);
    let (q2, vp2) = (p.value("q2")?, p.value("vp2")?);
    s.transfer(central, p1, q1 / vc);
    s.transfer(p1, central, q1 / vp1);
    s.transfer(central, p2, q2 / vc);
    s.transfer(p2, central, q2 / vp2);
    s.transfer(central, liver, qh / vc);
    s.transfer(liver, central, qh / vh);
    s.eliminate(liver, kel);
    s.transfer(liver, nor_central, kmet);
    s.transfer(nasal, central, p.value("ka_n")?);
    s.transfer(gut_swallowed, liver, p.value("ka_sw")?);
    s.transfer(gut_oral, liver, p.value("ka_po")?);
    let (q3, vpn) = (p.value("q3")?, p.value("vpn")?);
    s.eliminate(nor_central, cln / vcn);
    s.transfer(nor_central, nor_peripheral, q3 / vcn);
    s.transfer(nor_peripheral, nor_central, q3 / vpn);
    s.entries(&[central, nasal, gut_swallowed, gut_oral]);
    s.observe_plasma(central, vc);
    s.observe_metabolite(nor_central, vcn);

    // Well-stirred liver: E = CLint/(Qh + CLint), CLint = Vh·(kel + kmet); CL = Qh·E.
    let clint = vh * (kel + kmet);
    let clearance = qh * clint / (qh + clint);

    let fgut = p.value("fgut")?;
    let no_route = "Perez-Ruixo 2021 was fitted to intranasal, IV and oral data and has no such route".to_string();
    let slots = AbsorptionRoute::ALL
        .into_iter()
        .map(|route| -> Result<Result<RoutePlan, String>, PkError> {
            Ok(match route {
                AbsorptionRoute::Intramuscular | AbsorptionRoute::Sublingual => Err(no_route.clone()),
                AbsorptionRoute::Intranasal => Ok(RoutePlan::Nasal {
                    nasal_entry: 1,
                    gut_entry: 2,
                    frn_first: frn,
                    frn_later,
                    fgut,
                    swallow_min: p.value("dsw")?,
                    device_mg: p.typical("device_mg")?,
                }),
                AbsorptionRoute::Oral => {
                    Ok(RoutePlan::ZeroThenFirstOrder { entry: 3, fraction: fgut, duration_min: p.value("dpo")? })
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Individual::new(Engine::Matrix(s.engine(ke0)), RouteTable::new(slots), clearance, None))
}
