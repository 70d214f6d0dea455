// A minimal SVG writer (rects, lines, text) and the colour maps the analysis figures use; no
// dependencies, output viewable in any browser and convertible with rsvg-convert.
#pragma once

#include <string>

namespace moeforge::stats {

class SvgCanvas {
 public:
  SvgCanvas(double width, double height);
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& title = "");
  void line(double x1, double y1, double x2, double y2, const std::string& stroke = "#444", double width = 1);
  // anchor: start | middle | end; rotate: degrees about (x, y)
  void text(double x, double y, const std::string& content, double size = 11, const std::string& anchor = "start",
            double rotate = 0, const std::string& fill = "#222");
  std::string str() const;  // the complete document

 private:
  double width_, height_;
  std::string body_;
};

// Viridis-like sequential colour for t in [0, 1] (clamped), as "#rrggbb".
std::string sequential_color(double t);
// One of 10 distinguishable categorical colours.
std::string category_color(size_t index);
// XML-escapes text content.
std::string xml_escape(const std::string& text);

}  // namespace moeforge::stats
