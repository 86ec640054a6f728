// The kiosk page: load the door's code again every 30 s; a dash while there is none (cloud offline).
const img = document.getElementById('code');
const none = document.getElementById('none');
const door = document.body.dataset.door;
img.addEventListener('load', () => {
  img.hidden = false;
  none.hidden = true;
});
img.addEventListener('error', () => {
  img.hidden = true;
  none.hidden = false;
});
setInterval(() => {
  img.src = `/kiosk/${encodeURIComponent(door)}/code.svg?t=${Date.now()}`;
}, 30_000);
