//! `docs/PROTOCOL.md` must describe exactly the layouts the code defines:
//! every message section's table is parsed and compared, field by field,
//! with the offsets and sizes generated from the structs.
#![forbid(unsafe_code)]

use peregrine_wire::message::{FieldLayout, LAYOUTS, MESSAGE_LEN};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md exists")
}

/// (offset, length, field name) rows of the table under `### name`.
fn table_for(doc: &str, name: &str) -> Option<Vec<(usize, usize, String)>> {
    let heading = format!("### {name}\n");
    let start = doc.find(&heading)? + heading.len();
    let rest = &doc[start..];
    let end = rest
        .find("\n### ")
        .or_else(|| rest.find("\n## "))
        .unwrap_or(rest.len());
    let mut rows = Vec::new();
    for line in rest[..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 {
            continue;
        }
        let (Ok(off), Ok(len)) = (cells[1].parse::<usize>(), cells[2].parse::<usize>()) else {
            continue;
        };
        rows.push((off, len, cells[3].trim_matches('`').to_string()));
    }
    Some(rows)
}

#[test]
fn protocol_doc_matches_every_layout() {
    let doc = doc();
    for (name, fields) in LAYOUTS {
        let rows = table_for(&doc, name).unwrap_or_else(|| panic!("PROTOCOL.md has no section `### {name}`"));
        let code: Vec<(usize, usize, String)> = fields
            .iter()
            .map(|f: &FieldLayout| (f.offset, f.len, f.name.to_string()))
            .collect();
        assert_eq!(rows, code, "PROTOCOL.md table for {name} differs from the code");
        let total: usize = rows.iter().map(|r| r.1).sum();
        assert_eq!(total, MESSAGE_LEN, "{name} covers 100 bytes");
    }
}

#[test]
fn the_check_detects_drift() {
    // A doc with one offset changed must fail the comparison.
    let doc = doc().replacen("| 16 | 8 | `client_tag`", "| 17 | 8 | `client_tag`", 1);
    let rows = table_for(&doc, "Echo").unwrap();
    let code: Vec<(usize, usize, String)> = LAYOUTS[0]
        .1
        .iter()
        .map(|f| (f.offset, f.len, f.name.to_string()))
        .collect();
    assert_ne!(rows, code);
}

/// The rows of the table in the `## {name}` section, split into cells.
fn section_rows(doc: &str, name: &str) -> Vec<Vec<String>> {
    let heading = format!("## {name}\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no section `## {name}`"))
        + heading.len();
    let rest = &doc[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .filter(|l| {
            l.starts_with('|')
                && !l.starts_with("|---")
                && !l.starts_with("| Field")
                && !l.starts_with("| Code")
        })
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells[1..cells.len() - 1].iter().map(|c| c.to_string()).collect()
        })
        .collect()
}

#[test]
fn coded_fields_table_matches_the_enumerations() {
    use peregrine_wire::message::{Liquidity, LoginRejectReason, OrderKind, SelfTrade, Side, TimeInForce};
    fn rows<T: Copy + core::fmt::Debug + Into<u8>>(
        field: &str,
        all: &[T],
        letters: bool,
    ) -> Vec<Vec<String>> {
        all.iter()
            .map(|&v| {
                let code: u8 = v.into();
                let code = if letters {
                    format!("`{}`", code as char)
                } else {
                    code.to_string()
                };
                vec![field.to_string(), code, format!("{v:?}")]
            })
            .collect()
    }
    let mut code = Vec::new();
    code.extend(rows("`side` (NewOrder, ExecReport)", Side::ALL, false));
    code.extend(rows("`order_kind` (NewOrder)", OrderKind::ALL, false));
    code.extend(rows("`time_in_force` (NewOrder)", TimeInForce::ALL, false));
    code.extend(rows("`self_trade` (NewOrder)", SelfTrade::ALL, false));
    code.extend(rows("`liquidity` (ExecReport)", Liquidity::ALL, false));
    code.extend(rows("`reason` (LoginRejected)", LoginRejectReason::ALL, true));
    assert_eq!(section_rows(&doc(), "Coded fields"), code);
}

#[test]
fn reject_reasons_table_names_every_session_layer_reason() {
    use peregrine_wire::message::RejectReason;
    let rows = section_rows(&doc(), "Reject reasons");
    for r in RejectReason::ALL {
        let code = r.code().to_string();
        let row = rows
            .iter()
            .find(|row| row[0] == code)
            .unwrap_or_else(|| panic!("no row for reject reason {code}"));
        assert!(
            row[1].starts_with(&format!("{r:?}")),
            "reason {code} is {r:?} in the code: {row:?}"
        );
    }
}
