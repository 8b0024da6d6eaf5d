# nbgrader's settings for a course built on samlab's notebooks (README: Grading with nbgrader).
# Copy it into the course directory, beside source/, as nbgrader_config.py.
c = get_config()  # noqa: F821 (nbgrader defines get_config when it reads this file)

# The course's name in nbgrader's gradebook and exchange.
c.CourseDirectory.course_id = "sam-course"

# Seconds a cell may run. nbgrader's default, 30 s, is shorter than the longest cells in full
# mode: notebook 02's ρ sweep and 03's learning-rate sweep take 31 s and 40 s on a 2-core CPU.
c.Execute.timeout = 600
