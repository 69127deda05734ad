import { initAll } from '/static/govuk/govuk-frontend.min.js'
initAll()

// A region marked data-app-refresh="SECONDS" (a live list, such as open incidents) is
// fetched again every SECONDS and swapped in place: no page reload, so nobody loses their
// place. It waits while focus is inside it, and a button stops and restarts it (WCAG
// 2.2.2). Without JavaScript the page keeps its "Refresh the list" link.
// data-app-refresh-url fetches a lighter page that holds just the region instead.
for (const region of document.querySelectorAll('[data-app-refresh]')) {
  const seconds = Math.max(Number(region.dataset.appRefresh) || 30, 10)
  let paused = false
  const toggle = document.createElement('button')
  toggle.type = 'button'
  toggle.className = 'govuk-button govuk-button--secondary'
  toggle.textContent = 'Stop updating the list'
  toggle.addEventListener('click', () => {
    paused = !paused
    toggle.textContent = paused ? 'Start updating the list' : 'Stop updating the list'
  })
  region.before(toggle)
  window.setInterval(async () => {
    if (paused || region.contains(document.activeElement)) return
    try {
      const url = region.dataset.appRefreshUrl || window.location.href
      const response = await fetch(url, { credentials: 'same-origin' })
      if (!response.ok) return
      const fresh = new DOMParser()
        .parseFromString(await response.text(), 'text/html')
        .getElementById(region.id)
      if (fresh) region.innerHTML = fresh.innerHTML
    } catch {
      // Keep the list as it is; the next try may work.
    }
  }, seconds * 1000)
}
