//! The fields of an application, once: each field's key (in JSON, CSV and the database), its
//! Chinese label (in acks, exports and the board) and the header words a summary sheet uses
//! for it. Readers, exports and views all name fields through [`Field`], so a new synonym or
//! a renamed column is one edit here.
//!
//! Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One field of [`super::model::Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    College,
    Branch,
    ProjectName,
    Section,
    Leader,
    LeaderRole,
    Phone,
    Email,
    Advisor,
    Budget,
}

impl Field {
    /// In the order of the notice's 汇总表.
    pub const ALL: [Field; 10] = [
        Field::College,
        Field::Branch,
        Field::ProjectName,
        Field::Section,
        Field::Leader,
        Field::LeaderRole,
        Field::Phone,
        Field::Email,
        Field::Advisor,
        Field::Budget,
    ];

    /// The key in JSON, CSV headers and stored extractions (`project_name`).
    pub const fn key(self) -> &'static str {
        match self {
            Field::College => "college",
            Field::Branch => "branch",
            Field::ProjectName => "project_name",
            Field::Section => "section",
            Field::Leader => "leader",
            Field::LeaderRole => "leader_role",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::Advisor => "advisor",
            Field::Budget => "budget",
        }
    }

    /// The label people read, as the notice's 汇总表 names the column.
    pub const fn label(self) -> &'static str {
        match self {
            Field::College => "学院",
            Field::Branch => "支部名称",
            Field::ProjectName => "项目名称",
            Field::Section => "申报板块",
            Field::Leader => "项目负责人",
            Field::LeaderRole => "职务",
            Field::Phone => "联系方式",
            Field::Email => "电子邮箱",
            Field::Advisor => "指导老师",
            Field::Budget => "申请经费",
        }
    }

    /// Header words a summary sheet uses for the field, normalised (full-width folded, notes
    /// in brackets and a trailing 姓名 removed). The form reader has its own weighted list,
    /// because a form's label cells include generic words (名称, 姓名) that only count when
    /// nothing better is present.
    pub fn synonyms(self) -> &'static [&'static str] {
        match self {
            Field::College => &[
                "学院",
                "所在学院",
                "院系",
                "所在院系",
                "所属学院",
                "学院名称",
            ],
            Field::Branch => &[
                "支部名称",
                "党支部名称",
                "支部",
                "党支部",
                "所在支部",
                "申报支部",
            ],
            Field::ProjectName => &["项目名称", "项目题目", "项目", "项目标题"],
            Field::Section => &[
                "申报板块",
                "板块",
                "所属板块",
                "类别",
                "项目类别",
                "申报类别",
                "项目板块",
                "版块",
                "申报版块",
            ],
            Field::Leader => &["项目负责人", "负责人"],
            Field::LeaderRole => &["职务", "党内职务", "支部职务", "负责人职务"],
            Field::Phone => &[
                "联系方式",
                "联系电话",
                "手机",
                "电话",
                "手机号",
                "手机号码",
                "联系手机",
            ],
            Field::Email => &["电子邮箱", "邮箱", "email", "e-mail", "电子邮件"],
            Field::Advisor => &["指导老师", "指导教师"],
            Field::Budget => &[
                "申请经费",
                "经费预算",
                "金额",
                "预算",
                "申请金额",
                "经费",
                "预算金额",
                "申报经费",
            ],
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An unknown field key, with the keys that exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "没有名为“{0}”的字段，可用的字段：college、branch、project_name、section、leader、leader_role、phone、email、advisor、budget"
)]
pub struct UnknownField(pub String);

impl FromStr for Field {
    type Err = UnknownField;

    /// By key (`project_name`) or by label (`项目名称`).
    fn from_str(s: &str) -> Result<Field, UnknownField> {
        let s = s.trim();
        Field::ALL
            .into_iter()
            .find(|f| f.key() == s || f.label() == s)
            .ok_or_else(|| UnknownField(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_labels_round_trip() {
        for f in Field::ALL {
            assert_eq!(f.key().parse::<Field>(), Ok(f));
            assert_eq!(f.label().parse::<Field>(), Ok(f));
            assert_eq!(
                serde_json::to_value(f).ok(),
                Some(serde_json::Value::String(f.key().to_string())),
                "serde and key() agree for {f:?}"
            );
        }
        assert!("项目".parse::<Field>().is_err());
        assert!("".parse::<Field>().is_err());
        let err = "budjet".parse::<Field>().unwrap_err().to_string();
        assert!(err.contains("budjet") && err.contains("budget"), "{err}");
    }

    #[test]
    fn the_label_is_among_the_synonyms_and_no_synonym_names_two_fields() {
        for f in Field::ALL {
            assert!(f.synonyms().contains(&f.label()), "{f:?}");
        }
        let mut all: Vec<&str> = Field::ALL
            .iter()
            .flat_map(|f| f.synonyms())
            .copied()
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a synonym names two fields");
    }
}
