//! The consolidated 申报汇总表 as an .xlsx file: the spreadsheet staff would otherwise type by
//! hand from every branch's mail, with the office's own columns plus what shenbao adds
//! (version, arrival time, problems found), ready to print or to forward.
//!
//! Pure: rows in, bytes out (rust_xlsxwriter writes in memory), so it is tested by reading the
//! result back with the same reader that reads the branches' summaries.

use crate::extract::field::Field;
use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Formula, Workbook, Worksheet, XlsxError};

/// One application, as staff see it in the consolidated sheet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XlsxRow {
    pub college: String,
    pub branch: String,
    pub project_name: String,
    pub section: String,
    pub leader: String,
    pub leader_role: String,
    pub phone: String,
    pub advisor: String,
    pub budget_yuan: Option<f64>,
    /// Shown in the 申请经费 column when `budget_yuan` is `None` (`待定`, `2000-3000元`).
    pub budget_text: String,
    pub version: i64,
    /// Beijing time, as text (`2025-09-26 14:03`).
    pub received_at: String,
    /// Chinese, one problem per line.
    pub problems: String,
    /// 评审等级 (empty before the review).
    pub level: String,
    /// 资助金额 (yuan); `None` when not funded or not reviewed.
    pub amount_yuan: Option<f64>,
    /// 结项状态: 未立项 / 材料未齐（缺…） / 材料齐全 (empty before the review).
    pub closure: String,
}

impl XlsxRow {
    /// The row's text for a field (empty for fields the sheet does not show).
    fn text(&self, field: Field) -> &str {
        match field {
            Field::College => &self.college,
            Field::Branch => &self.branch,
            Field::ProjectName => &self.project_name,
            Field::Section => &self.section,
            Field::Leader => &self.leader,
            Field::LeaderRole => &self.leader_role,
            Field::Phone => &self.phone,
            Field::Advisor => &self.advisor,
            Field::Email | Field::Budget => "",
        }
    }
}

/// The office's columns, in the office's order, then shenbao's, then the review's: the
/// reviewers fill 评审等级 and 资助金额 in this very sheet for `review import` (which finds the
/// columns by their header), and after the import the export shows the decisions and where
/// each project stands in the closure phase.
const HEADERS: [&str; 16] = [
    "序号",
    Field::College.label(),
    Field::Branch.label(),
    Field::ProjectName.label(),
    Field::Section.label(),
    Field::Leader.label(),
    Field::LeaderRole.label(),
    Field::Phone.label(),
    Field::Advisor.label(),
    "申请经费（元）",
    "版本",
    "收到时间",
    "问题",
    "评审等级",
    "资助金额（元）",
    "结项状态",
];
/// The text columns after 序号, in the order of [`HEADERS`].
const TEXT_FIELDS: [Field; 8] = [
    Field::College,
    Field::Branch,
    Field::ProjectName,
    Field::Section,
    Field::Leader,
    Field::LeaderRole,
    Field::Phone,
    Field::Advisor,
];
const BUDGET_COL: u16 = 9;
const LEVEL_COL: u16 = 13;
const AMOUNT_COL: u16 = 14;
const CLOSURE_COL: u16 = 15;
/// Long free text wraps instead of widening the sheet past a printed page.
const WRAPPED: [u16; 2] = [3, 12];
const MAX_WIDTH: f64 = 60.0;
const WRAPPED_MAX_WIDTH: f64 = 36.0;
const LINE_HEIGHT: f64 = 16.0;

/// Writes the consolidated summary: a merged title row, the header row (frozen, with an
/// autofilter), one bordered row per application and a 合计 row whose SUM formula carries its
/// computed value, so viewers that do not recalculate (previews, calamine) still show it.
pub fn write_summary_xlsx(title: &str, rows: &[XlsxRow]) -> Result<Vec<u8>, String> {
    write(title, rows).map_err(|e| format!("生成汇总表失败：{e}"))
}

fn write(title: &str, rows: &[XlsxRow]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("汇总")?;
    let last_col = (HEADERS.len() - 1) as u16;
    let cell = Format::new()
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::VerticalCenter);
    let wrap = cell.clone().set_text_wrap();
    let center = cell.clone().set_align(FormatAlign::Center);
    let money = cell.clone().set_num_format("#,##0");
    let money_cents = cell.clone().set_num_format("#,##0.00");
    let bold = center.clone().set_bold();
    let header = bold.clone().set_text_wrap().set_background_color("#D9E1F2");

    let title_fmt = Format::new()
        .set_bold()
        .set_font_size(16)
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter);
    ws.merge_range(0, 0, 0, last_col, title, &title_fmt)?;
    ws.set_row_height(0, 32)?;
    for (c, h) in HEADERS.iter().enumerate() {
        ws.write_string_with_format(1, c as u16, *h, &header)?;
    }
    ws.set_row_height(1, 22)?;

    let mut widths: Vec<f64> = HEADERS.iter().map(|h| text_width(h)).collect();
    let mut total = 0.0;
    let mut granted = 0.0;
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 2;
        ws.write_number_with_format(row, 0, (i + 1) as f64, &center)?;
        for (c, field) in TEXT_FIELDS.into_iter().enumerate() {
            let t = r.text(field);
            let c = c as u16 + 1;
            let fmt = if WRAPPED.contains(&c) { &wrap } else { &cell };
            ws.write_string_with_format(row, c, t, fmt)?;
        }
        match r.budget_yuan {
            Some(y) => {
                total += y;
                let fmt = if y.fract() == 0.0 {
                    &money
                } else {
                    &money_cents
                };
                ws.write_number_with_format(row, BUDGET_COL, y, fmt)?;
            }
            None => {
                ws.write_string_with_format(row, BUDGET_COL, &r.budget_text, &cell)?;
            }
        }
        ws.write_number_with_format(row, 10, r.version as f64, &center)?;
        ws.write_string_with_format(row, 11, &r.received_at, &cell)?;
        ws.write_string_with_format(row, 12, &r.problems, &wrap)?;
        ws.write_string_with_format(row, LEVEL_COL, &r.level, &center)?;
        match r.amount_yuan {
            Some(y) => {
                granted += y;
                let fmt = if y.fract() == 0.0 {
                    &money
                } else {
                    &money_cents
                };
                ws.write_number_with_format(row, AMOUNT_COL, y, fmt)?;
            }
            None => {
                ws.write_blank(row, AMOUNT_COL, &cell)?;
            }
        }
        ws.write_string_with_format(row, CLOSURE_COL, &r.closure, &cell)?;

        let budget = r
            .budget_yuan
            .map_or_else(|| r.budget_text.clone(), format_money);
        let values = [
            (i + 1).to_string(),
            r.college.clone(),
            r.branch.clone(),
            r.project_name.clone(),
            r.section.clone(),
            r.leader.clone(),
            r.leader_role.clone(),
            r.phone.clone(),
            r.advisor.clone(),
            budget,
            r.version.to_string(),
            r.received_at.clone(),
            r.problems.clone(),
            r.level.clone(),
            r.amount_yuan.map(format_money).unwrap_or_default(),
            r.closure.clone(),
        ];
        for (w, v) in widths.iter_mut().zip(&values) {
            *w = w.max(text_width(v));
        }
        set_wrapped_height(ws, row, &values)?;
    }

    let sum_row = rows.len() as u32 + 2;
    ws.merge_range(sum_row, 0, sum_row, BUDGET_COL - 1, "合计", &bold)?;
    let money_bold = if total.fract() == 0.0 {
        money.clone()
    } else {
        money_cents.clone()
    }
    .set_bold();
    if rows.is_empty() {
        ws.write_number_with_format(sum_row, BUDGET_COL, 0.0, &money_bold)?;
    } else {
        let formula = Formula::new(format!("=SUM(J3:J{sum_row})")).set_result(format_plain(total));
        ws.write_formula_with_format(sum_row, BUDGET_COL, formula, &money_bold)?;
    }
    for c in BUDGET_COL + 1..=last_col {
        ws.write_blank(sum_row, c, &cell)?;
    }
    // The amount granted, once reviews are in.
    if granted > 0.0 {
        let fmt = if granted.fract() == 0.0 {
            &money
        } else {
            &money_cents
        }
        .clone()
        .set_bold();
        let formula =
            Formula::new(format!("=SUM(O3:O{sum_row})")).set_result(format_plain(granted));
        ws.write_formula_with_format(sum_row, AMOUNT_COL, formula, &fmt)?;
    }

    for (c, w) in widths.iter().enumerate() {
        let c = c as u16;
        let cap = if WRAPPED.contains(&c) {
            WRAPPED_MAX_WIDTH
        } else {
            MAX_WIDTH
        };
        ws.set_column_width(c, (w + 2.0).clamp(6.0, cap))?;
    }
    ws.set_freeze_panes(2, 0)?;
    ws.autofilter(1, 0, (sum_row - 1).max(1), last_col)?;
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(0, 1)?;
    wb.save_to_buffer()
}

/// Display width in Excel column units: a CJK or full-width character is two, others one;
/// for multi-line text the widest line.
fn text_width(text: &str) -> f64 {
    text.lines()
        .map(|l| {
            l.chars()
                .map(|c| if is_wide(c) { 2.0 } else { 1.0 })
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
}

fn is_wide(c: char) -> bool {
    matches!(c, '\u{1100}'..='\u{115F}' | '\u{2E80}'..='\u{A4CF}' | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}' | '\u{FE30}'..='\u{FE4F}' | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}' | '\u{20000}'..='\u{3FFFD}')
        || c == '“'
        || c == '”'
}

/// Excel does not grow a row for wrapped text it did not lay out itself, so the height is set
/// from the number of lines the wrapped cells will take at their capped widths.
fn set_wrapped_height(ws: &mut Worksheet, row: u32, values: &[String]) -> Result<(), XlsxError> {
    let lines = WRAPPED
        .iter()
        .filter_map(|c| values.get(usize::from(*c)))
        .map(|v| {
            v.lines()
                .map(|l| (text_width(l) / WRAPPED_MAX_WIDTH).ceil().max(1.0))
                .sum::<f64>()
        })
        .fold(1.0, f64::max);
    if lines > 1.0 {
        ws.set_row_height(row, lines * LINE_HEIGHT)?;
    }
    Ok(())
}

/// `3000` → `3,000`, `2800.5` → `2,800.50`: for width estimates, as Excel will show it.
fn format_money(y: f64) -> String {
    let cents = (y * 100.0).round() as i64;
    let (int, frac) = (cents.abs() / 100, cents.abs() % 100);
    let digits = int.to_string();
    let mut out = String::from(if cents < 0 { "-" } else { "" });
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if frac != 0 {
        out.push_str(&format!(".{frac:02}"));
    }
    out
}

/// The formula's cached result as Excel writes it (`12300`, `2800.5`).
fn format_plain(y: f64) -> String {
    let y = (y * 100.0).round() / 100.0;
    if y.fract() == 0.0 && y.abs() < 1e15 {
        format!("{}", y as i64)
    } else {
        y.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::model::Value;
    use crate::extract::sheet::{SheetLimits, SummaryConfig, read_summary, read_workbook};

    fn rows() -> Vec<XlsxRow> {
        let row = |branch: &str, budget: Option<f64>, problems: &str| XlsxRow {
            college: "海洋与地球科学学院".into(),
            branch: branch.into(),
            project_name: "“红色客厅”社区文化浸润计划：以党建引领社区治理的实践探索".into(),
            section: "党旗飘扬·社区聚力".into(),
            leader: "朱颖".into(),
            leader_role: "副书记".into(),
            phone: "15237692682".into(),
            advisor: "汪睿婷".into(),
            budget_yuan: budget,
            budget_text: "2000-3000元".into(),
            version: 1,
            received_at: "2025-09-26 14:03".into(),
            problems: problems.into(),
            ..Default::default()
        };
        vec![
            row("海洋科学硕士生党支部", Some(2000.0), ""),
            row(
                "地质学硕士生党支部",
                Some(4800.5),
                "缺少指导老师\n申请经费超过上限",
            ),
            row("2022级本科生党支部", None, "申请经费不是一个金额"),
        ]
    }

    #[test]
    fn reads_back_title_header_values_and_total() {
        let bytes = write_summary_xlsx("2025年秋季学期“对标争先”申报汇总", &rows()).unwrap();
        let wb = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        let sheet = &wb.sheets[0];
        assert_eq!(sheet.name, "汇总");
        let text =
            |r: usize, c: usize| sheet.rows[r].get(c).map(Value::to_text).unwrap_or_default();
        assert_eq!(text(0, 0), "2025年秋季学期“对标争先”申报汇总");
        let header: Vec<String> = (0..16).map(|c| text(1, c)).collect();
        assert_eq!(header, HEADERS);
        // Before the review the review columns are empty, and so is their total.
        assert_eq!((text(2, 13), text(2, 14), text(2, 15)), Default::default());
        assert_eq!(text(5, 14), "");
        assert_eq!(sheet.rows[2][0], Value::Float(1.0));
        assert_eq!(text(2, 2), "海洋科学硕士生党支部");
        assert_eq!(sheet.rows[2][9], Value::Float(2000.0));
        assert_eq!(sheet.rows[3][9], Value::Float(4800.5));
        assert_eq!(text(3, 12), "缺少指导老师\n申请经费超过上限");
        assert_eq!(text(4, 9), "2000-3000元");
        assert_eq!(text(4, 11), "2025-09-26 14:03");
        assert_eq!(
            (text(5, 0), sheet.rows[5][9].clone()),
            ("合计".into(), Value::Float(6800.5))
        );

        // The consolidated sheet is itself a summary table: the reader finds all three rows.
        let sections = ["党旗飘扬·社区聚力".to_string()];
        let s = read_summary(
            &wb,
            &SummaryConfig {
                sections: &sections,
            },
        )
        .unwrap();
        assert_eq!((s.header_row, s.rows.len()), (2, 3));
        assert_eq!(s.rows[1].fields.budget_yuan(), Some(4800.5));
        assert_eq!(
            s.rows[0].fields.section.as_deref(),
            Some("党旗飘扬·社区聚力")
        );
    }

    #[test]
    fn review_decisions_and_closure_status_have_their_columns() {
        let mut rows = rows();
        rows[0].level = "一般".into();
        rows[0].amount_yuan = Some(1000.0);
        rows[0].closure = "材料未齐（缺活动总结）".into();
        rows[1].level = "重点".into();
        rows[1].amount_yuan = Some(4500.5);
        rows[1].closure = "材料齐全".into();
        rows[2].level = "不立项".into();
        rows[2].closure = "未立项".into();
        let bytes = write_summary_xlsx("汇总", &rows).unwrap();
        let wb = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        let sheet = &wb.sheets[0];
        let text =
            |r: usize, c: usize| sheet.rows[r].get(c).map(Value::to_text).unwrap_or_default();
        assert_eq!(
            (text(2, 13), sheet.rows[2][14].clone(), text(2, 15)),
            (
                "一般".into(),
                Value::Float(1000.0),
                "材料未齐（缺活动总结）".into()
            )
        );
        assert_eq!(
            (text(3, 13), text(3, 15)),
            ("重点".into(), "材料齐全".into())
        );
        assert_eq!(
            (text(4, 13), text(4, 14), text(4, 15)),
            ("不立项".into(), "".into(), "未立项".into())
        );
        // The 合计 row adds up what was granted as well as what was asked for.
        assert_eq!(sheet.rows[5][14], Value::Float(5500.5));
        assert_eq!(sheet.rows[5][9], Value::Float(6800.5));
    }

    #[test]
    fn empty_summary_has_header_and_zero_total() {
        let bytes = write_summary_xlsx("空", &[]).unwrap();
        let wb = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        assert_eq!(wb.sheets[0].rows[2][0], Value::Text("合计".into()));
        assert_eq!(wb.sheets[0].rows[2][9], Value::Float(0.0));
    }

    #[test]
    fn widths_count_cjk_as_two() {
        assert_eq!(text_width("学院ab"), 6.0);
        assert_eq!(text_width("一\n一二三"), 6.0);
        assert_eq!(
            (format_money(1_234_567.0), format_money(2800.5)),
            ("1,234,567".into(), "2,800.50".into())
        );
        assert_eq!(
            (format_plain(6800.5), format_plain(3000.0)),
            ("6800.5".into(), "3000".into())
        );
    }

    /// Writes the test workbook to `$SHENBAO_XLSX_OUT` for a look in a spreadsheet program.
    #[test]
    fn write_sample_for_viewing() {
        if let Ok(path) = std::env::var("SHENBAO_XLSX_OUT") {
            let bytes = write_summary_xlsx(
                "2025年秋季学期学生党支部“对标争先”建设项目申报汇总表",
                &rows(),
            )
            .unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
}
