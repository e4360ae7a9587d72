//! The closure (结项) phase: which materials a funded project still owes.
//!
//! Each review level names its materials in the configuration (`[[level]] closure_materials`,
//! e.g. 结题报告, 报销材料, 工作案例); attachments are recognised by name (see
//! [`crate::attach::role`]). A branch may send its materials in several mails: what counts is
//! everything it has sent for closure so far.

use crate::attach::Role;
use crate::pipeline::Pipeline;
use sqlx::{Row, SqliteConnection};

/// The attachment role that satisfies a configured material.
pub fn material_role(material: &str) -> Role {
    let m = crate::textnorm::normalize(material);
    if m.contains("结题") || m.contains("结项") {
        Role::ClosureReport
    } else if m.contains("报销") || m.contains("经费") || m.contains("票据") {
        Role::Reimbursement
    } else if m.contains("案例") || m.contains("总结") {
        Role::CaseStudy
    } else {
        Role::Other
    }
}

/// Each required material and whether a file of its role is among `present`.
pub fn checklist(required: &[String], present: &[Role]) -> Vec<(String, bool)> {
    required
        .iter()
        .map(|m| {
            let role = material_role(m);
            (m.clone(), role != Role::Other && present.contains(&role))
        })
        .collect()
}

fn role_of(text: &str) -> Role {
    match text {
        "closure_report" => Role::ClosureReport,
        "reimbursement" => Role::Reimbursement,
        "case_study" => Role::CaseStudy,
        "form" => Role::Form,
        "summary" => Role::Summary,
        _ => Role::Other,
    }
}

/// Roles of every file a branch has sent for closure so far (zip entries included).
pub async fn roles_sent(conn: &mut SqliteConnection, branch: &str) -> anyhow::Result<Vec<Role>> {
    let rows = sqlx::query(
        "SELECT DISTINCT a.role FROM attachments a JOIN submissions s ON s.message_id = a.message_id
         WHERE s.kind = 'closure' AND s.branch_key = ?",
    )
    .bind(branch)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| role_of(&r.get::<String, _>(0)))
        .collect())
}

/// A funded project's closure state.
#[derive(Debug, Clone)]
pub struct ClosureState {
    pub branch: String,
    pub level: String,
    pub missing: Vec<String>,
}

/// Every funded project (current review) with what it still owes.
pub async fn funded_projects(p: &Pipeline) -> anyhow::Result<Vec<ClosureState>> {
    let mut conn = p.store.pool.acquire().await?;
    let rows = sqlx::query(
        "SELECT branch, level FROM reviews WHERE is_current = 1 AND funded = 1 ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let branch: String = r.get(0);
        let level: String = r.get(1);
        let required = p
            .cfg
            .levels
            .iter()
            .find(|l| l.name == level)
            .map(|l| l.closure_materials.clone())
            .unwrap_or_default();
        let sent = roles_sent(&mut conn, &branch).await?;
        let missing = checklist(&required, &sent)
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(m, _)| m)
            .collect();
        out.push(ClosureState {
            branch,
            level,
            missing,
        });
    }
    Ok(out)
}

/// The campaign's phase at `now`, with the counts staff care about in it.
pub async fn phase(p: &Pipeline, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    let c = &p.cfg.campaign;
    let deadline = c.deadline + chrono::Duration::from_std(c.grace).unwrap_or_default();
    if now <= deadline {
        return Ok(format!(
            "申报阶段（申报截止：{}）",
            crate::clock::beijing(c.deadline)
        ));
    }
    let reviews: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reviews WHERE is_current = 1")
        .fetch_one(&p.store.pool)
        .await?;
    if reviews == 0 {
        return Ok("评审阶段（申报已截止，尚未导入评审结果）".to_string());
    }
    let funded = funded_projects(p).await?;
    let complete = funded.iter().filter(|f| f.missing.is_empty()).count();
    let counts = format!(
        "已立项 {} 个，结项材料齐全 {complete} 个，尚未齐全 {} 个",
        funded.len(),
        funded.len() - complete
    );
    Ok(match c.closure_deadline {
        Some(cd) if now <= cd => format!(
            "实施与结项阶段（{counts}；结项截止：{}）",
            crate::clock::beijing(cd)
        ),
        Some(_) => format!("结项已截止（{counts}）"),
        None => format!("实施阶段（{counts}；结项截止时间尚未设置）"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materials_map_to_roles() {
        assert_eq!(material_role("结题报告"), Role::ClosureReport);
        assert_eq!(material_role("结项报告"), Role::ClosureReport);
        assert_eq!(material_role("报销材料"), Role::Reimbursement);
        assert_eq!(material_role("工作案例"), Role::CaseStudy);
        assert_eq!(material_role("活动总结"), Role::CaseStudy);
        assert_eq!(material_role("合影"), Role::Other);
    }

    #[test]
    fn checklist_marks_what_is_there() {
        let req = vec![
            "结题报告".to_string(),
            "报销材料".to_string(),
            "工作案例".to_string(),
        ];
        assert_eq!(
            checklist(&req, &[Role::ClosureReport, Role::Form]),
            vec![
                ("结题报告".to_string(), true),
                ("报销材料".to_string(), false),
                ("工作案例".to_string(), false)
            ]
        );
        assert!(
            checklist(
                &req,
                &[Role::ClosureReport, Role::Reimbursement, Role::CaseStudy]
            )
            .iter()
            .all(|(_, ok)| *ok)
        );
        // A material nobody can recognise is never ticked by accident.
        assert_eq!(
            checklist(&["合影".to_string()], &[Role::Other]),
            vec![("合影".to_string(), false)]
        );
    }
}
