//! Extraction cases made with real office software (see scripts/make-office-fixtures.py):
//! each variant of the form and the summary, saved by LibreOffice as .docx/.doc and
//! .xlsx/.xls, must yield the fields `cases.json` states, field by field.

use serde_json::Value;
use shenbao::attach::sniff_named;
use shenbao::extract::{form, read_word, sheet};
use std::path::PathBuf;

fn sections() -> Vec<String> {
    shenbao::config::DEFAULT_SECTIONS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn as_json(f: &shenbao::extract::model::Fields) -> Value {
    serde_json::json!({
        "project_name": f.project_name,
        "section": f.section,
        "leader": f.leader,
        "leader_role": f.leader_role,
        "phone": f.phone,
        "advisor": f.advisor,
        "budget_yuan": f.budget_yuan().map(|y| y as i64),
    })
}

#[test]
fn every_variant_field_by_field() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/office");
    let cases: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).expect("cases.json"))
            .expect("json");
    assert!(cases.len() >= 20);
    let sections = sections();
    let mut failures = Vec::new();
    for c in &cases {
        let file = c["file"].as_str().unwrap_or_default();
        let bytes = std::fs::read(dir.join(file)).expect("fixture");
        let format = sniff_named(&bytes, file);
        let fields = if c["kind"] == "form" {
            let doc = read_word(&bytes, format).unwrap_or_else(|e| panic!("{file}: {e}"));
            form::form_fields(
                &doc,
                &form::FormConfig {
                    sections: &sections,
                },
            )
        } else {
            let wb = sheet::read_workbook(&bytes, &Default::default())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let summary = sheet::read_summary(
                &wb,
                &sheet::SummaryConfig {
                    sections: &sections,
                },
            )
            .unwrap_or_else(|| panic!("{file}: no header found"));
            summary
                .rows
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("{file}: no data row"))
                .fields
        };
        let got = as_json(&fields);
        for (k, want) in c["expect"].as_object().into_iter().flatten() {
            if &got[k] != want {
                failures.push(format!("{file}: {k} = {} (want {want})", got[k]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
