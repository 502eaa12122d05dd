// What a hostile content page's script tries with the viewer's browser: Packyard's admin pages and API, on its own
// origin and on the main origin (`?main=<origin>`), with whatever credentials the browser sends. It reports what
// it could read in #report, as JSON.
async function attempt(url, options) {
  try {
    const response = await fetch(url, options);
    const body = await response.text();
    return { status: response.status, type: response.type, body: body.slice(0, 400) };
  } catch (error) {
    return { error: String(error) };
  }
}

async function spy() {
  const main = new URLSearchParams(location.search).get("main");
  const report = { origin: location.origin, cookies: document.cookie };
  report.admin = await attempt("/admin/");
  report.user = await attempt("/__api__/v1/user");
  report.users = await attempt("/__api__/v1/users");
  report.home = await attempt("/");
  report.mainAdmin = await attempt(main + "/admin/", { credentials: "include" });
  report.mainUser = await attempt(main + "/__api__/v1/user", { credentials: "include" });
  report.mainAdminOpaque = await attempt(main + "/admin/", { credentials: "include", mode: "no-cors" });
  document.getElementById("report").textContent = JSON.stringify(report);
}

spy();
