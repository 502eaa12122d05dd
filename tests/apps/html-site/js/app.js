document.title += " (scripted)";
