//! `jpki resident import FILE.csv`: bulk registration, as when a company applies for its
//! staff. The whole file is read and every row checked — here for its shape (columns, dates,
//! sex), then by the authority for the register's rules (attributes, card expiry,
//! duplicates in the register and within the file) — before anything is written; then all
//! rows are registered in one unit of work, or none.
//!
//! The file is UTF-8 CSV (RFC 4180, read with the `csv` crate) with a header row naming the
//! columns `name,birth,sex,address,prefecture,municipality,card_expiry` in any order; dates
//! are YYYY-MM-DD and sex is 1 (male), 2 (female) or 9 (not applicable).

use std::path::Path;

use ca::authority::NewResident;
use ca::Error;
use serde::Serialize;

/// Columns a file must have.
const COLUMNS: [&str; 7] = [
    "name",
    "birth",
    "sex",
    "address",
    "prefecture",
    "municipality",
    "card_expiry",
];

/// Largest file accepted: 100,000 rows of ~300 bytes.
const MAX_BYTES: u64 = 32 << 20;

/// A row that cannot be registered: its 1-based row number (the header is row 0) and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub row: usize,
    pub code: String,
    pub error: String,
}

/// Reads and checks the shape of every row; returns the residents, or every refused row.
pub fn read(path: &Path) -> Result<Result<Vec<NewResident>, Vec<Refused>>, Error> {
    let meta = std::fs::metadata(path).map_err(Error::io(format!("read {}", path.display())))?;
    if meta.len() > MAX_BYTES {
        return Err(Error::Invalid(format!(
            "{}: {} bytes is more than the {} a bulk registration may have; split the file",
            path.display(),
            meta.len(),
            MAX_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))?;
    parse(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// [`read`] on the bytes of a file; the outer error is a file that is not a register CSV at
/// all (no header, a missing column).
pub fn parse(bytes: &[u8]) -> Result<Result<Vec<NewResident>, Vec<Refused>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("the header row: {e}"))?
        .clone();
    let mut at = [0usize; 7];
    for (i, col) in COLUMNS.iter().enumerate() {
        at[i] = headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == *col)
            .ok_or_else(|| {
                format!(
                    "the header row has no `{col}` column (it needs {})",
                    COLUMNS.join(",")
                )
            })?;
    }
    if let Some(extra) = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}'))
        .find(|h| !COLUMNS.contains(h))
    {
        return Err(format!(
            "the header row has an unknown column `{extra}` (it needs {})",
            COLUMNS.join(",")
        ));
    }
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let parsed = record
            .map_err(|e| format!("not a CSV row: {e}"))
            .and_then(|r| {
                let f = |c: usize| r.get(at[c]).unwrap_or_default().to_owned();
                Ok(NewResident {
                    name: f(0),
                    birth: super::parse_date(&f(1)).map_err(|e| format!("birth: {e}"))?,
                    sex: f(2).parse().map_err(|e| format!("sex: {e}"))?,
                    address: f(3),
                    prefecture: f(4),
                    municipality: f(5),
                    card_expiry: super::parse_date(&f(6))
                        .map_err(|e| format!("card_expiry: {e}"))?,
                })
            });
        match parsed {
            Ok(r) => rows.push(r),
            Err(error) => refused.push(Refused {
                row,
                code: "invalid".into(),
                error,
            }),
        }
    }
    if rows.is_empty() && refused.is_empty() {
        return Err("the file has a header but no residents".into());
    }
    Ok(if refused.is_empty() {
        Ok(rows)
    } else {
        Err(refused)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "name,birth,sex,address,prefecture,municipality,card_expiry\n";

    #[test]
    fn reads_rows_in_any_column_order() {
        let text = "card_expiry,name,birth,sex,address,prefecture,municipality\n\
                    2034-01-01,山田　花子,1990-04-01,2,東京都千代田区1-1,東京都,千代田区\n";
        let rows = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "山田　花子");
        assert_eq!(rows[0].municipality, "千代田区");
    }

    #[test]
    fn every_bad_row_is_reported_with_its_number() {
        let text = format!(
            "{HEADER}山田　花子,1990-04-01,2,東京都千代田区1-1,東京都,千代田区,2034-01-01\n\
             鈴木　一郎,1990-13-01,1,東京都千代田区1-2,東京都,千代田区,2034-01-01\n\
             佐藤　次郎,1990-01-01,x,東京都千代田区1-3,東京都,千代田区,2034-01-01\n"
        );
        let refused = parse(text.as_bytes()).unwrap().unwrap_err();
        let rows: Vec<usize> = refused.iter().map(|r| r.row).collect();
        assert_eq!(rows, [2, 3]);
        assert!(refused[0].error.starts_with("birth:"), "{:?}", refused[0]);
        assert!(refused[1].error.starts_with("sex:"), "{:?}", refused[1]);
    }

    #[test]
    fn a_file_without_the_columns_is_refused_as_a_whole() {
        let e = parse(b"name,birth\nx,1990-01-01\n").unwrap_err();
        assert!(e.contains("no `sex` column"), "{e}");
        let e = parse(HEADER.replace('\n', ",shoe_size\n").as_bytes()).unwrap_err();
        assert!(e.contains("unknown column `shoe_size`"), "{e}");
        let e = parse(HEADER.as_bytes()).unwrap_err();
        assert!(e.contains("no residents"), "{e}");
    }
}
