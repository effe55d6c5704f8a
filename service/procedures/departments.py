"""The responsible department a procedure hands work to (issue_rectification, feedback).

A task offered to `dept_admin:department` with an unknown code, or to a department without an active
administrator, would be offered to nobody and wait forever; procedures check the code first.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..authority import CHECKS_ONLY
from ..models import Department, User
from ..services import current_unit, service


def responsible_department_problem(s: Session, code) -> tuple[str | None, Department | None]:
    """Why the department with this code cannot take the work (in Chinese, for the form), or None."""
    department = s.scalar(select(Department).where(Department.code == code)) if isinstance(code, str) else None
    if department is None:
        return f"责任部门 {code or '(空)'} 不存在,请填写正确的部门代码。", None
    admins = s.scalar(select(User.id).where(User.department_id == department.id, User.role == "dept_admin",
                                            User.active.is_(True)).limit(1))
    if admins is None:
        return f"责任部门 {department.name}({code})没有在岗的部门管理员,无法接收。", department
    return None, department


@service("check_responsible_department", authority=CHECKS_ONLY)
def check_responsible_department(params: dict, context: dict) -> dict:
    problem, department = responsible_department_problem(current_unit.get().session, params.get("department"))
    return {"ok": problem is None, "problem": problem or "", "name": department.name if department else ""}
